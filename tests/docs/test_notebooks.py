"""A lesson opens and runs as a notebook: jupytext reads the percent file, a Jupyter kernel executes it.

This is the path the lessons README describes for notebook users (the
``notebooks`` extra brings jupytext, nbconvert, ipykernel and JupyterLab;
the ``test`` extra brings the three pieces this test needs). The executed
notebook is written into tmp_path, its figures into MINICNN_LESSON_FIGURES,
and nothing lands in lessons/.
"""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LESSON = ROOT / "lessons" / "06_cam_is_a_special_case_of_grad_cam.py"


@pytest.mark.slow
def test_a_lesson_converts_and_executes_as_a_notebook(tmp_path, monkeypatch):
    jupytext = pytest.importorskip("jupytext", reason="needs the test extra: pip install -e '.[test]'")
    nbclient = pytest.importorskip("nbclient", reason="needs the test extra: pip install -e '.[test]'")
    pytest.importorskip("ipykernel", reason="needs the test extra: pip install -e '.[test]'")
    import nbformat
    before = sorted(p.name for p in LESSON.parent.iterdir())
    figures = tmp_path / "figures"
    monkeypatch.setenv("MINICNN_LESSON_FIGURES", str(figures))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    notebook = jupytext.read(LESSON)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert len(code) >= 5 and any(c.cell_type == "markdown" for c in notebook.cells)
    nbclient.NotebookClient(notebook, timeout=240, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    nbformat.write(notebook, tmp_path / "06.ipynb")
    printed = "".join(o.get("text", "") for c in code for o in c.get("outputs", []) if o.get("name") == "stdout")
    assert "wrote" in printed and not any(o.get("output_type") == "error" for c in code for o in c.outputs)
    assert (figures / "06_cam_vs_gradcam.png").is_file()
    assert sorted(p.name for p in LESSON.parent.iterdir()) == before
