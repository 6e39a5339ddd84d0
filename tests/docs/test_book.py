"""The book's generated pages stay in step with the package, without building the book.

``docs/_ext/book_pages.py`` writes the methods pages from the registry and the API pages from the
package; ``docs/_ext/lessons_to_gallery.py`` rewrites the lessons' Markdown prose as
reStructuredText for sphinx-gallery; ``docs/_ext/plain_docstrings.py`` keeps the hand-aligned
docstrings literal. These tests read what they generate (Sphinx itself is not needed: the book's
full build and its Chromium check run in CI, ``.ci/run``).
"""

import inspect
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

import book_pages  # noqa: E402
import lessons_to_gallery  # noqa: E402
import plain_docstrings  # noqa: E402

from minicnn.explain import registry  # noqa: E402


def test_every_registered_method_has_its_section_on_its_familys_page():
    pages = book_pages.method_pages()
    assert set(pages) == {m.family for m in registry.METHODS.values()}
    for m in registry.METHODS.values():
        page = pages[m.family]
        section = page[page.index(f".. _method-{m.name}:"):]
        section = section[:section.index(".. _method-", 5)] if ".. _method-" in section[5:] else section
        assert f"``minicnn explain --method {m.name}``" in section, m.name
        assert f"``{m.value}``" in section and m.key in section, m.name
        assert f":ref:`method-{m.name}`" in page                       # the family's table of methods
        for option in m.options:
            assert f"``{option.flag}``" in section, (m.name, option.flag)
        assert "reference" in section and (m.name in book_pages.REFERENCES or m.name in book_pages.NO_REFERENCE)
    # a method added to the registry without a family page entry would fail above; a family page
    # names no method the registry lacks
    named = {n for page in pages.values() for n in re.findall(r"^\.\. _method-([a-z0-9-]+):$", page, re.M)}
    assert named == set(registry.METHODS)


def test_the_methods_index_links_every_family_page():
    pages = book_pages.method_pages()
    toctree = book_pages.methods_index(pages)
    assert [line.strip() for line in toctree.splitlines() if line.strip().startswith("methods/")] == \
        [f"methods/{f}" for f in pages]


def test_the_api_pages_cover_every_public_name():
    pages = book_pages.api_pages()
    for module_name, _ in book_pages.API_MODULES:
        page = pages[module_name]
        for name in book_pages.public_names(module_name):
            assert (f".. autofunction:: {name}\n" in page or f".. autoclass:: {name}\n" in page
                    or f"- ``{name}``:" in page or f"``{name}``" in page), (module_name, name)
    # the façade's names are documented where they are defined and linked from its page
    assert "- ``load``" not in pages["minicnn"] and ".. autofunction:: load" in pages["minicnn"]
    assert "- ``Model``: :py:obj:`minicnn.model.Model`" in pages["minicnn"]


def test_the_public_names_of_a_module_without_all():
    names = book_pages.public_names("minicnn.metrics.similarity")
    assert "spearman_abs" in names and not any(n.startswith("_") for n in names)
    import minicnn.metrics.similarity as similarity
    assert all(inspect.getmodule(getattr(similarity, n)) is similarity for n in names)


def test_markdown_prose_becomes_restructured_text():
    md = ("## 1. The score $y^c$\n\nThe `logits` are $y$; |x| and name_ stay text.\n\n"
          "$$\n\\alpha_k = \\frac{1}{Z}\n$$\n\n| a | $b$ |\n|---|---|\n| `c` | d |\n\n- one\n  two")
    assert lessons_to_gallery.markdown_to_rst(md) == (
        "1. The score :math:`y^c`\n--------------------------\n\n"
        "The ``logits`` are :math:`y`; \\|x\\| and name\\_ stay text.\n\n"
        ".. math::\n\n   \\alpha_k = \\frac{1}{Z}\n\n"
        ".. list-table::\n   :header-rows: 1\n\n   * - a\n     - :math:`b`\n   * - ``c``\n     - d\n\n"
        "- one\n  two\n")
    assert lessons_to_gallery.inline("Grad-CAM$\\times Z$s") == "Grad-CAM\\ :math:`\\times Z`\\ s"


@pytest.mark.parametrize("lesson", sorted((ROOT / "lessons").glob("[0-9][0-9]_*.py")), ids=lambda p: p.stem)
def test_every_lesson_becomes_a_gallery_script_with_the_same_code(lesson):
    text = lesson.read_text(encoding="utf-8")
    script = lessons_to_gallery.gallery_script(text, f"lessons/{lesson.name}")
    compile(script, lesson.name, "exec")
    docstring = script.split('"""')[1]
    assert re.search(rf"^Lesson {int(lesson.name[:2])} · ", docstring, re.M), "the title is the first heading"
    code = [body for kind, body in lessons_to_gallery.split_cells(text) if kind == "code" and body.strip()]
    assert all(body in script for body in code)                          # every code cell, unchanged
    assert "$$" not in script and "# %% [markdown]" not in script


def test_hand_aligned_docstrings_stay_literal_and_symbols_are_escaped():
    lines = ["One line, |x| and kaiming_uniform_ here.", "", "name : text", "       continued", "",
             "    y = f(x)     (N, K)", "", "Parameters", "----------", "x : int", "    the input"]
    assert plain_docstrings.plain_to_rst(lines) == [
        "One line, \\|x\\| and kaiming_uniform\\_ here.", "", "::", "", "    name : text", "           continued", "",
        "::", "", "        y = f(x)     (N, K)", "", "Parameters", "----------", "x : int", "    the input"]


def test_the_docs_extra_pins_the_book_toolchain():
    text = (ROOT / "pyproject.toml").read_text()
    docs = re.search(r"^docs = \[(.*?)\]", text, re.M | re.S).group(1)
    for package in ("sphinx", "sphinx-gallery", "pydata-sphinx-theme", "numpydoc", "sphinx-mathjax-offline",
                    "myst-parser", "sphinx-design"):
        assert re.search(rf'"{package}==[\d.]+"', docs), package
