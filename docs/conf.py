"""Sphinx configuration of the minicnn book: ``python -m sphinx -W --keep-going docs docs/_build/html``.

The lessons are executed by sphinx-gallery (``lessons/`` rewritten for it into ``docs/_lesson_scripts``,
see ``_ext/lessons_to_gallery.py``); the methods pages and the API pages are generated from the
registry and the package (``_ext/book_pages.py``) into ``docs/methods/`` and ``docs/api/``. Nothing
is loaded from the network: MathJax is copied into the site by sphinx-mathjax-offline.
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE / "_ext"), str(ROOT)]

import book_pages  # noqa: E402
import lessons_to_gallery  # noqa: E402

import minicnn  # noqa: E402

os.environ.setdefault("MPLBACKEND", "Agg")
# the lessons write their figures where this says (the gallery shows them from the open figures instead)
os.environ["MINICNN_LESSON_FIGURES"] = str(HERE / "_build" / "lesson-figures")

project = "minicnn"
author = "the minicnn authors"
copyright = "2026, the minicnn authors (MIT licence)"
release = version = minicnn.__version__ if hasattr(minicnn, "__version__") else "0.1.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
    "sphinx_design",
    "plain_docstrings",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# docs/ also holds the README's images and the scorecard's files: only these are pages
exclude_patterns = ["_build", "_lesson_scripts", "_included", "_scorecard_tables", "lessons", "scorecard/*.md",
                    "Thumbs.db", ".DS_Store",
                    "learn/*.ipynb", "learn/*.py", "learn/*.zip", "learn/*.json"]
suppress_warnings = []

myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

lessons_to_gallery.write_gallery(ROOT / "lessons", HERE / "_lesson_scripts", book_pages.LEARN_INDEX)
# MINICNN_BOOK_DRAFT=1: no method figures and no agreement runs (a quick build while writing)
book_pages.write_pages(HERE, draw=os.environ.get("MINICNN_BOOK_DRAFT") != "1")

sphinx_gallery_conf = {
    "examples_dirs": ["_lesson_scripts"],
    "gallery_dirs": ["learn"],
    "within_subsection_order": "FileNameSortKey",
    "filename_pattern": r"/\d\d_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "min_reported_time": 1,
    "matplotlib_animations": False,
    "capture_repr": ("_repr_html_",),
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
    "abort_on_example_error": True,
    "line_numbers": False,
    "first_notebook_cell": None,
    # the computation-times page loads jQuery and DataTables from a CDN: the book loads nothing from outside
    "write_computation_times": False,
}

autosummary_generate = True
autodoc_default_options = {"members": False}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()

html_theme = "pydata_sphinx_theme"
html_title = "minicnn"
html_static_path = ["_static"]
html_css_files = ["book.css"]
html_favicon = "_static/favicon.png"
html_show_sourcelink = False
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "icon_links": [],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    "secondary_sidebar_items": ["page-toc"],
    "header_links_before_dropdown": 7,
}
html_sidebars = {"index": [], "changelog": [], "troubleshooting": []}
html_context = {"default_mode": "light"}


def download_the_lessons_as_written(app, exception):
    """The "Download Python source code" link gives the lesson itself (its prose in Markdown, as in
    lessons/), not the copy rewritten for sphinx-gallery; the notebook link stays sphinx-gallery's."""
    if exception is not None or app.builder.name != "html":
        return
    for lesson in sorted((ROOT / "lessons").glob("[0-9][0-9]_*.py")):
        for copy in Path(app.outdir, "_downloads").glob(f"*/{lesson.name}"):
            copy.write_bytes(lesson.read_bytes())


def setup(app):
    app.connect("build-finished", download_the_lessons_as_written)
