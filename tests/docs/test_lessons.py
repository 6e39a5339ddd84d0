"""Every lesson runs top to bottom as a script, checks its own claims, and writes its figures.

A lesson is ``lessons/NN_name.py`` in the "percent" cell format. Each one
asserts the numbers it teaches, so running it is its test: a lesson that
goes stale fails here. Lessons are found by their file names, so a new one
is picked up without touching this file. Each runs in a fresh process with
matplotlib's Agg backend, in an empty working folder, with its figures sent
to ``MINICNN_LESSON_FIGURES``.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LESSONS_DIR = ROOT / "lessons"
LESSONS = sorted(LESSONS_DIR.glob("[0-9][0-9]_*.py"))
INDEX = LESSONS_DIR / "README.md"

# Each lesson is written to run in under a minute on 2 idle cores; the limit
# leaves room for a busy machine but catches a lesson that has grown slow.
TIME_LIMIT_S = float(os.environ.get("MINICNN_LESSON_TIME_LIMIT", "180"))


def lesson_id(path: Path) -> str:
    return path.stem


def test_lessons_are_found():
    assert LESSONS, f"no lessons/NN_name.py files in {LESSONS_DIR}"
    numbers = [p.name[:2] for p in LESSONS]
    assert len(numbers) == len(set(numbers)), f"two lessons share a number: {numbers}"


@pytest.mark.parametrize("lesson", LESSONS, ids=lesson_id)
def test_lesson_follows_the_conventions(lesson):
    """Percent cells with prose, at least one assert, figures in the folder the environment names."""
    text = lesson.read_text(encoding="utf-8")
    assert re.search(r"^# %% \[markdown\]$", text, re.M), "no '# %% [markdown]' prose cell"
    assert re.search(r"^# %%$", text, re.M), "no '# %%' code cell"
    assert re.search(r"^\s*assert ", text, re.M), "a lesson must assert what it claims"
    assert 'os.environ.get("MINICNN_LESSON_FIGURES"' in text, "figures must go to $MINICNN_LESSON_FIGURES"
    assert "plt.show()" not in text, "save figures instead (plt.show warns under Agg)"


@pytest.mark.slow
@pytest.mark.parametrize("lesson", LESSONS, ids=lesson_id)
def test_lesson_runs_and_checks_itself(lesson, tmp_path):
    figures = tmp_path / "figures"
    work = tmp_path / "cwd"
    work.mkdir()
    env = dict(os.environ, MPLBACKEND="Agg", MINICNN_LESSON_FIGURES=str(figures),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(lesson)], cwd=work, env=env, capture_output=True,
                              text=True, timeout=TIME_LIMIT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{lesson.name} ran longer than {TIME_LIMIT_S:.0f} s")
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, (
        f"{lesson.name} exited with status {proc.returncode}\n"
        f"--- stdout (end) ---\n{proc.stdout[-3000:]}\n--- stderr (end) ---\n{proc.stderr[-3000:]}")
    assert elapsed < TIME_LIMIT_S
    written = sorted(p.name for p in figures.glob("*.png"))
    assert written, f"{lesson.name} wrote no figure into $MINICNN_LESSON_FIGURES"
    prefix = lesson.name[:3]
    assert all(name.startswith(prefix) for name in written), f"figure names must start with {prefix!r}: {written}"
    assert not any(work.iterdir()), f"{lesson.name} wrote into its working folder: {sorted(os.listdir(work))}"
    print(f"{lesson.name}: {elapsed:.1f} s, figures {written}")


def test_index_lists_every_lesson_and_its_figures_exist():
    text = INDEX.read_text(encoding="utf-8")
    for lesson in LESSONS:
        assert f"({lesson.name})" in text, f"{INDEX.name} does not link {lesson.name}"
    for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text):
        assert (INDEX.parent / target).resolve().is_file(), f"{INDEX.name} shows a missing figure: {target}"
