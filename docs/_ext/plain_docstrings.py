"""minicnn's docstrings are written to be read as plain text: equations and shapes aligned by hand.

Before numpydoc and autodoc read a docstring as reStructuredText, this extension keeps what was
aligned by hand aligned, and keeps plain-text symbols from being read as markup:

- a block indented under its paragraph (an example, an equation) or a block whose lines are aligned
  in columns (``name : text`` with indented continuation lines, a table drawn with ``|``) becomes a
  literal block, shown in a fixed-width font exactly as written;
- in running text, ``|x|`` (an absolute value) and ``word_`` (a name with a trailing underscore)
  are escaped, because reST reads them as a substitution and a hyperlink reference.

numpydoc sections (``Parameters`` over a line of dashes) are left to numpydoc.
"""

from __future__ import annotations

import re

LIST_ITEM = re.compile(r"^\s*(?:[-*+] |\d+\. |\.\. |>>> |:\w+:)")
SECTION_RULE = re.compile(r"^\s*-{3,}\s*$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _escape(line: str) -> str:
    """``|`` and a word's trailing ``_`` escaped outside double-back-quoted literals and roles."""
    parts = re.split(r"(``.+?``|:\w+:`[^`]+`|`[^`]+`_?)", line)
    for k in range(0, len(parts), 2):
        text = parts[k].replace("|", "\\|")
        text = re.sub(r"(\w)_(?=[\s,.;:)\]]|$)", r"\1\\_", text)
        parts[k] = text
    return "".join(parts)


def plain_to_rst(lines: list[str]) -> list[str]:
    """The docstring's lines with the rules of the module docstring applied, up to a numpydoc section."""
    end = len(lines)
    for k in range(1, len(lines)):
        if SECTION_RULE.match(lines[k]) and lines[k - 1].strip():
            end = k - 1
            break
    out: list[str] = []
    k = 0
    after_colons = False
    while k < end:
        if not lines[k].strip():
            out.append(lines[k])
            k += 1
            continue
        block = []
        while k < end and lines[k].strip():
            block.append(lines[k])
            k += 1
        first = _indent(block[0])
        tabular = any(line.lstrip().startswith("|") for line in block) and len(block) > 1
        hanging = any(_indent(line) > first for line in block[1:]) and not LIST_ITEM.match(block[0])
        indented = first > 0 and not LIST_ITEM.match(block[0])
        if after_colons:
            out.extend(block)
        elif tabular or hanging or indented:
            if out and out[-1].strip():
                out.append("")
            out.extend(["::", ""] + ["    " + line for line in block])
        else:
            out.extend(_escape(line) for line in block)
        after_colons = block[-1].rstrip().endswith("::")
    return out + lines[end:]


def process(app, what, name, obj, options, lines):
    lines[:] = plain_to_rst(list(lines))


def setup(app):
    app.connect("autodoc-process-docstring", process, priority=400)     # before numpydoc (500)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
