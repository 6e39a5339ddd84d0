"""The house rule: each layer of the package imports only from the layers below it.

    engine (the root modules, layers/)  ->  util/  ->  inputs/  ->  models/  ->  explain/  ->  metrics/
        ->  figures/, bench/  ->  server/  ->  commands/ (one module per subcommand; cli.py assembles them)

Every import counts, function-local ones included: a lazy import hides a dependency from a
reader but not from this test. Within a subpackage modules may import each other, but never in
a circle. Only ``figures/`` and the front ends (server/, commands/) import matplotlib, and no
command imports another (``commands/cli.py`` assembles them all). ``minicnn/__init__.py`` is the
public façade (``minicnn.load``, ...): it may import from any layer, and nothing inside the
package imports it, except ``__version__``.

A function-local import says why it is not at the top, in a trailing comment (``# lazy: torch is
optional``, ``# lazy: matplotlib slows `minicnn --help```, ``# lazy: as above``): lazy imports stay only
where they buy start-up time or keep a dependency optional.

No module of the package is over 450 lines unless its docstring says why ("over 450 lines
because ..."): a long module is split along what it does.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "minicnn"

#: The layers, lowest first; a module's layer is the first entry its dotted name starts with.
LAYERS = [
    ("engine", ("minicnn.errors", "minicnn.windows", "minicnn.parallel", "minicnn.memory", "minicnn.layers",
                "minicnn.model", "minicnn.gradcheck")),
    ("util", ("minicnn.util",)),
    ("inputs", ("minicnn.inputs",)),
    ("models", ("minicnn.models",)),
    ("explain", ("minicnn.explain", "minicnn.synthesis")),
    ("metrics", ("minicnn.metrics",)),
    ("figures", ("minicnn.figures", "minicnn.bench")),
    ("server", ("minicnn.server",)),
    ("commands", ("minicnn.commands",)),
]
FRONT_ENDS = ("minicnn.commands", "minicnn.server")
COMMANDS_SHARED = "minicnn.commands.options"   # the argparse pieces every command may import
MATPLOTLIB_ALLOWED = ("minicnn.figures", "minicnn.commands", "minicnn.server")
#: Within the engine, the order of its own modules (each imports only those before it).
ENGINE_ORDER = ("minicnn.errors", "minicnn.windows", "minicnn.parallel", "minicnn.memory", "minicnn.layers",
                "minicnn.model", "minicnn.gradcheck")


def module_name(path: Path, package: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def imports_of(path: Path, package: Path) -> list[tuple[str, int]]:
    """Every module ``path`` imports (absolute dotted names, function-local imports included), with line numbers.

    ``from . import x`` counts as importing the module ``pkg.x`` when ``x`` is a module, else ``pkg``.
    """
    name, is_package = module_name(path, package)
    here = name.split(".") if is_package else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for a in node.names:
                sub = f"{target}.{a.name}"
                found.append((sub if _is_module(sub, package) else target, node.lineno))
    return found


def _only_version(path: Path, line: int) -> bool:
    """Whether the import on ``line`` takes just ``__version__`` from the façade."""
    return path.read_text(encoding="utf-8").splitlines()[line - 1].strip() == "from .. import __version__"


def _is_module(dotted: str, package: Path) -> bool:
    rel = Path(*dotted.split(".")[1:]) if "." in dotted else Path()
    base = package / rel
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def layer_of(module: str) -> int | None:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return None


def group_of(module: str) -> str:
    """The unit inside which modules may import each other: a subpackage, or a root module alone.

    Each command is a front end of its own: its module is its unit.
    """
    parts = module.split(".")
    return ".".join(parts[:3] if parts[:2] == ["minicnn", "commands"] else parts[:2])


def engine_rank(module: str) -> int:
    return next(i for i, p in enumerate(ENGINE_ORDER) if module == p or module.startswith(p + "."))


def violations(package: Path = PACKAGE) -> list[str]:
    """Every broken rule in ``package``, one line each."""
    edges: dict[str, set[str]] = {}
    problems = []
    for path in sorted(package.rglob("*.py")):
        name, _ = module_name(path, package)
        where = path.relative_to(package.parent)
        for target, line in imports_of(path, package):
            top = target.split(".")[0]
            if top == "matplotlib" and not any(name == p or name.startswith(p + ".") for p in MATPLOTLIB_ALLOWED):
                problems.append(f"{where}:{line}: imports matplotlib (only figures/ and the front ends may)")
            if top != "minicnn" or name == "minicnn":
                continue
            if target == "minicnn" and name == "minicnn.commands.cli" and _only_version(path, line):
                continue
            if target == "minicnn":
                problems.append(f"{where}:{line}: imports the package façade minicnn/__init__.py")
                continue
            edges.setdefault(name, set()).add(target)
            mine, theirs = layer_of(name), layer_of(target)
            if mine is None or theirs is None:
                problems.append(f"{where}:{line}: {name} or {target} is in no layer of tests/test_layering.py")
                continue
            if group_of(name) == group_of(target) or target == COMMANDS_SHARED or (
                    name == "minicnn.commands.cli" and target.startswith("minicnn.commands.")):
                continue
            if theirs > mine:
                problems.append(f"{where}:{line}: {name} ({LAYERS[mine][0]}) imports {target} "
                                f"({LAYERS[theirs][0]}), a layer above it")
            elif theirs == mine and mine == 0 and engine_rank(target) > engine_rank(name):
                problems.append(f"{where}:{line}: {name} imports {target}, later in the engine's order")
            elif theirs == mine and mine != 0:
                kind = "front end" if any(name.startswith(p) for p in FRONT_ENDS) else "module"
                problems.append(f"{where}:{line}: {kind} {name} imports {target}, beside it in the same layer")
    problems += [f"import circle: {' -> '.join(c)}" for c in circles(edges)]
    return problems


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import circles among modules (depth-first search; each circle reported once)."""
    found, seen_sets = [], set()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                key = frozenset(cycle)
                if key not in seen_sets:
                    seen_sets.add(key)
                    found.append(cycle)
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    return found


def test_the_package_keeps_the_layering_rule():
    problems = violations()
    assert not problems, "\n".join(problems)


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    package = tmp_path / "minicnn"
    for rel, text in files.items():
        path = package / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return package


@pytest.mark.parametrize("files, expected", [
    ({"__init__.py": "", "explain/__init__.py": "", "explain/a.py": "def f():\n    from .b import g\n",
      "explain/b.py": "from .a import f\n"}, "import circle"),
    ({"__init__.py": "", "model.py": "", "models/__init__.py": "", "models/zoo.py": "",
      "model.py ": ""}, None),
    ({"__init__.py": "", "explain/__init__.py": "", "explain/x.py": "from ..metrics import road\n",
      "metrics/__init__.py": "", "metrics/road.py": ""}, "a layer above it"),
    ({"__init__.py": "", "commands/__init__.py": "", "commands/a.py": "from .b import run\n",
      "commands/b.py": ""}, "front end"),
    ({"__init__.py": "", "commands/__init__.py": "", "commands/a.py": "", "server/__init__.py": "",
      "server/api.py": "def f():\n    from ..commands import a\n"}, "a layer above it"),
    ({"__init__.py": "", "metrics/__init__.py": "", "metrics/m.py": "import matplotlib.pyplot as plt\n"},
     "imports matplotlib"),
    ({"__init__.py": "", "layers/__init__.py": "", "layers/conv.py": "def f():\n    from ..model import Model\n",
      "model.py": ""}, "later in the engine's order"),
])
def test_the_rule_fails_on_a_planted_violation(tmp_path, files, expected):
    files = {k.strip(): v for k, v in files.items()}
    problems = violations(_plant(tmp_path, files))
    if expected is None:
        assert problems == []
    else:
        assert any(expected in p for p in problems), problems


#: The most lines a module of the package may have, unless its docstring says why it needs more.
MAX_MODULE_LINES = 450
LONG_MODULE_REASON = "over 450 lines because"
#: Modules still over the limit without a stated reason, being split; each entry fails the test once its
#: module is under the limit or states its reason, so the list only shrinks.
BEING_SPLIT: tuple[str, ...] = ()


def long_modules(package: Path = PACKAGE, limit: int = MAX_MODULE_LINES) -> list[str]:
    """Every module of ``package`` over ``limit`` lines whose docstring does not say "over 450 lines because".

    The phrase is matched in any case; a comment does not count, only the docstring.
    """
    found = []
    for path in sorted(package.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > limit and LONG_MODULE_REASON not in (ast.get_docstring(ast.parse(text)) or "").lower():
            found.append(f"{path.relative_to(package.parent).as_posix()}: {lines} lines")
    return found


def test_no_module_is_long_without_a_stated_reason():
    long = long_modules()
    unexplained = [m for m in long if m.split(":")[0] not in BEING_SPLIT]
    assert not unexplained, (f"over {MAX_MODULE_LINES} lines: split along what the module does, or say why in "
                             f"its docstring ('{LONG_MODULE_REASON} ...'):\n" + "\n".join(unexplained))
    done = [p for p in BEING_SPLIT if not any(m.startswith(p + ":") for m in long)]
    assert not done, f"no longer over {MAX_MODULE_LINES} lines without a reason; remove from BEING_SPLIT: {done}"


@pytest.mark.parametrize("docstring, lines, expected", [
    ('"""A module."""\n', 449, []),
    ('"""A module."""\n', 450, ["minicnn/big.py: 451 lines"]),
    ('"""A module of 460 lines, long because it is."""\n', 460, ["minicnn/big.py: 461 lines"]),
    ('"""A module.\n\nOver 450 lines because one table lists every layer.\n"""\n', 460, []),
    ('"""A module.\n\nIt is over 450 lines because one class walks every layer.\n"""\n', 460, []),
    ('# over 450 lines because a comment is not the docstring\n', 460, ["minicnn/big.py: 461 lines"]),
])
def test_the_length_rule_fails_on_a_planted_long_module(tmp_path, docstring, lines, expected):
    package = _plant(tmp_path, {"__init__.py": "", "big.py": docstring + "x = 1\n" * lines})
    assert long_modules(package) == expected


def unexplained_local_imports(package: Path = PACKAGE) -> list[str]:
    """Every import inside a function of ``package`` whose last line carries no trailing comment."""
    found = []
    for path in sorted(package.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for func in ast.walk(ast.parse(text)):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and "#" not in lines[node.end_lineno - 1]:
                    found.append(f"{path.relative_to(package.parent).as_posix()}:{node.lineno}: "
                                 f"{lines[node.lineno - 1].strip()}")
    return sorted(set(found))


def test_every_function_local_import_says_why():
    unexplained = unexplained_local_imports()
    assert not unexplained, ("a function-local import without a trailing comment: move it to the top, or say "
                             "what laziness buys ('# lazy: torch is optional'):\n" + "\n".join(unexplained))


@pytest.mark.parametrize("text, expected", [
    ("import os\n\n\ndef f():\n    return os.sep\n", []),
    ("def f():\n    import torch  # lazy: torch is optional\n", []),
    ("def f():\n    import torch\n", ["minicnn/m.py:2: import torch"]),
    ("class C:\n    def f(self):\n        from .x import y\n", ["minicnn/m.py:3: from .x import y"]),
    ("def f():\n    from .x import (a,\n                    b)  # lazy: as above\n", []),
    ("def f():\n    # lazy: a comment above does not count\n    import torch\n",
     ["minicnn/m.py:3: import torch"]),
])
def test_the_lazy_import_rule_fails_on_a_planted_case(tmp_path, text, expected):
    assert unexplained_local_imports(_plant(tmp_path, {"__init__.py": "", "m.py": text})) == expected
