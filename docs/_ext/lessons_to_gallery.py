"""The lessons as sphinx-gallery scripts: the same code cells, their Markdown prose as reStructuredText.

A lesson (``lessons/NN_name.py``) is a jupytext "percent" script whose prose cells are Markdown with
LaTeX. sphinx-gallery executes percent scripts and renders their comment blocks, but reads those
blocks as reStructuredText and takes the title from a module docstring. ``gallery_script(text)``
rewrites one lesson for it: the jupytext header dropped, the first prose cell as the docstring,
every code cell unchanged, and this subset of Markdown translated (what the lessons use):

- ``# Title`` / ``## Section`` / ``### Subsection`` headings;
- ``$$ ... $$`` display math -> ``.. math::``; ``$...$`` inline math -> ``:math:`...```;
- ```code``` -> double back-quoted literals; ``**bold**`` and ``*italic*`` are the same in both;
- pipe tables -> ``.. list-table::``; lists and paragraphs are the same in both;
- ``|`` and a word's trailing ``_`` escaped (reST reads them as substitutions and references).

Standard library only: it runs inside Sphinx's ``conf.py`` and in the tests.
"""

from __future__ import annotations

import re
from pathlib import Path

HEADING_UNDERLINE = {2: "-", 3: "~", 4: "^"}


def split_cells(text: str) -> list[tuple[str, str]]:
    """[(kind, body)] of a percent script: kind "markdown" (comment markers removed) or "code"."""
    text = re.sub(r"\A# ---\n(?:#.*\n)*?# ---\n", "", text)        # the jupytext header
    cells = []
    for chunk in re.split(r"^# %%", text, flags=re.M)[1:]:
        header, _, body = chunk.partition("\n")
        if header.strip() == "[markdown]":
            lines = [re.sub(r"^# ?", "", line) for line in body.rstrip("\n").splitlines()]
            cells.append(("markdown", "\n".join(lines).strip("\n")))
        else:
            cells.append(("code", body.strip("\n")))
    return cells


def _protect(text: str, store: list[str], pattern: str, render, flags=0) -> str:
    def keep(m):
        store.append(render(m))
        return f"\x00{len(store) - 1}\x00"
    return re.sub(pattern, keep, text, flags=flags)


def _restore(text: str, store: list[str]) -> str:
    while "\x00" in text:
        text = re.sub(r"\x00(\d+)\x00", lambda m: store[int(m.group(1))], text)
    return text


def inline(text: str) -> str:
    """One run of Markdown text (no block structure) as reST inline markup."""
    store: list[str] = []
    text = _protect(text, store, r"`([^`]+)`", lambda m: f"``{m.group(1)}``")
    text = _protect(text, store, r"(?<![\\$])\$(?!\$)(.+?)(?<!\\)\$", lambda m: f":math:`{m.group(1)}`", re.S)
    text = text.replace("\\", "\\\\")
    text = text.replace("|", "\\|")
    text = re.sub(r"(\w)_(?=\W|$)", r"\1\\_", text)
    # an inline role glued to a word needs an escaped space on that side
    text = re.sub(r"(\w)(\x00\d+\x00)", r"\1\\ \2", text)
    text = re.sub(r"(\x00\d+\x00)(\w)", r"\1\\ \2", text)
    return _restore(text, store)


def _table(rows: list[str]) -> list[str]:
    def cells(row):
        row = row.strip().strip("|")
        return [c.strip() for c in re.split(r"(?<!\\)\|", row)]
    header, body = cells(rows[0]), [cells(r) for r in rows[2:]]
    out = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header, *body]:
        for k, cell in enumerate(row):
            out.append(f"   {'*' if k == 0 else ' '} - {inline(cell) or '..'}")
    return [*out, ""]


def markdown_to_rst(md: str) -> str:
    """A Markdown prose cell as reStructuredText (the subset in the module docstring)."""
    out: list[str] = []
    lines = md.splitlines()
    i = 0
    paragraph: list[str] = []

    def flush():
        if paragraph:
            out.extend(inline("\n".join(paragraph)).splitlines())
            paragraph.clear()

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        heading = re.match(r"^(#{1,4}) (.*)$", line)
        if heading:
            flush()
            level, title = len(heading.group(1)), inline(heading.group(2).strip())
            bar = ("=" if level == 1 else HEADING_UNDERLINE[level]) * (len(title) + 2)
            out.extend([bar, title, bar, ""] if level == 1 else [title, bar, ""])
            i += 1
        elif stripped.startswith("$$"):
            flush()
            indent = line[: len(line) - len(line.lstrip())]
            body = [stripped[2:]]
            if not (stripped.endswith("$$") and len(stripped) > 2):
                i += 1
                while i < len(lines) and not lines[i].strip().endswith("$$"):
                    body.append(lines[i].strip())
                    i += 1
                body.append(lines[i].strip() if i < len(lines) else "")
            body[-1] = body[-1][:-2] if body[-1].endswith("$$") else body[-1]
            body = [b for b in body if b.strip()]
            if out and out[-1].strip():
                out.append("")
            out.extend([f"{indent}.. math::", ""] + [f"{indent}   {b}" for b in body] + [""])
            i += 1
        elif stripped.startswith("|") and i + 1 < len(lines) and re.match(r"^\s*\|[-:| ]+\|\s*$", lines[i + 1]):
            flush()
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(lines[i])
                i += 1
            if out and out[-1].strip():
                out.append("")
            out.extend(_table(rows))
        elif not stripped:
            flush()
            if out and out[-1] != "":
                out.append("")
            i += 1
        else:
            paragraph.append(line)
            i += 1
    flush()
    return "\n".join(out).strip("\n") + "\n"


def gallery_script(text: str, source_name: str) -> str:
    """The lesson ``text`` as a sphinx-gallery script: a docstring (title and introduction), then cells."""
    cells = split_cells(text)
    if not cells or cells[0][0] != "markdown":
        raise ValueError(f"{source_name}: a lesson starts with a prose cell holding its title")
    intro = markdown_to_rst(cells[0][1])
    intro += (f"\n.. note::\n\n   This page is ``{source_name}``, run when the book was built: every number and "
              f"figure below is its output. Run it yourself with ``python {source_name}``, or open it as a "
              f"notebook (``lessons/README.md`` says how).\n")
    parts = [f'r"""\n{intro}"""\n']
    for kind, body in cells[1:]:
        if kind == "markdown":
            rst = markdown_to_rst(body)
            parts.append("# %%\n" + "\n".join(("# " + l) if l else "#" for l in rst.splitlines()) + "\n")
        elif body.strip():
            parts.append("# %%\n\n" + body + "\n")
    return "\n".join(parts)


def write_gallery(lessons_dir: Path, out_dir: Path, readme: str) -> list[Path]:
    """Every ``lessons/NN_*.py`` as a gallery script in ``out_dir`` (rewritten only when changed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    _write_if_changed(out_dir / "README.rst", readme)
    for lesson in sorted(lessons_dir.glob("[0-9][0-9]_*.py")):
        target = out_dir / lesson.name
        _write_if_changed(target, gallery_script(lesson.read_text(encoding="utf-8"), f"lessons/{lesson.name}"))
        written.append(target)
    for stale in set(out_dir.glob("*.py")) - set(written):
        stale.unlink()
    return written


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
