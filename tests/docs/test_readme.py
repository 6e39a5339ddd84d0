"""The README's and the book's promises: the tour runs as written, CI runs exactly the README's test command.

The README is the front door; its long sections live in the book's pages (docs/*.md), where these
tests read them: the tour (docs/tour.md), your own photo (docs/own-photo.md), the command line and
its table of methods (docs/command-line.md), and every shell command of every page.
"""

import re
from pathlib import Path

import numpy as np

from minicnn.gradcheck import relative_error

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
#: The book's pages that hold what the README held (docs/*.md), by name.
BOOK = {name: (ROOT / "docs" / f"{name}.md").read_text() for name in
        ("index", "tour", "own-photo", "command-line", "methods", "trust", "explorer", "models", "speed",
         "troubleshooting", "cluster")}
TOUR = BOOK["tour"]


def code_blocks(language, text=TOUR):
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_the_tour_runs_as_written_and_its_grad_cam_is_the_derivative():
    tour = code_blocks("python")[0]
    ns = {}
    exec(compile(tour, "docs/tour.md (tour)", "exec"), ns)
    # The tour computes alpha from the engine's backward and checks gradcam.py, which uses the
    # same formula; prove the numbers instead. alpha_k = (1/Z) sum_ij dy^c/dA^k_ij is the
    # derivative of y^c along a uniform shift of map k, d/dt y^c(A + t 1_k) / Z: central
    # differences in float64, all K maps at once (copy k of A has map k shifted), through the
    # forward passes of the layers after features.19 (vgg_cifar10 is a chain of layers).
    model, A, alpha, L, c = (ns[k] for k in ("model", "A", "alpha", "L", "c"))
    K, h, w = A.shape[1:]
    model64 = model.astype(np.float64)
    names = [name for name, _ in model64.layers()]
    tail = [model64[name] for name in names[names.index("features.19") + 1:]]

    def y_c(maps):
        for layer in tail:
            maps = layer.forward(maps)[0]
        return maps[:, c]

    A64 = A.astype(np.float64)
    assert relative_error(y_c(A64), model.forward(ns["x"])[:, c]) < 1e-6     # the tail is the whole rest
    shifts = np.eye(K)[:, :, None, None] * np.ones((h, w))                  # (K, K, h, w): copy k shifts map k
    step = 1e-6
    alpha_fd = (y_c(A64 + step * shifts) - y_c(A64 - step * shifts)) / (2 * step * h * w)   # (K,)
    assert relative_error(alpha[0], alpha_fd) < 1e-5                     # the tour's float32 alpha
    assert relative_error(L[0], np.maximum(np.einsum("k,kij->ij", alpha_fd, A64[0]), 0)) < 1e-5
    assert np.any(alpha_fd < 0) and np.any(alpha_fd > 0) and L.max() > 0


def test_the_tour_echoes_nothing_when_pasted_into_a_repl():
    """A bare expression in the REPL prints its value: the tour's only bare expressions are print() calls
    (``model.backward(...)`` alone would echo a (1, 3, 32, 32) array)."""
    import ast
    bare = [node.value for node in ast.parse(code_blocks("python")[0]).body if isinstance(node, ast.Expr)]
    assert bare and all(isinstance(e, ast.Call) and getattr(e.func, "id", None) == "print" for e in bare), \
        [ast.unparse(e) for e in bare]


def test_ci_runs_exactly_the_readme_test_command():
    test_command = next(block.strip() for block in code_blocks("sh", README) if "pytest" in block)
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "'" not in test_command
    assert f"python3 .ci/guard.py -- '{test_command}'" in ci      # the command itself, run under the guard


# ---------------------------------------------------------------- every block, as a reader pastes it

LESSONS_README = (ROOT / "lessons" / "README.md").read_text()

#: Subcommands cheap enough to run here as the README writes them (seconds on the shipped models).
CHEAP = ("models", "layers", "explain", "evaluate")


def blocks(text, language):
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def shell_commands(text):
    """Each command of the ```sh blocks of ``text``, in order: continued lines joined, comments and
    leading VAR=value assignments dropped, ``a && b`` split; as argv lists."""
    import shlex
    for block in blocks(text, "sh"):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"(^|\s+)#.*$", "", line).strip()
            for command in filter(None, (c.strip() for c in re.split(r"&&|\|", line))):
                argv = shlex.split(command)
                while argv and re.match(r"^[A-Z_]+=", argv[0]):
                    argv = argv[1:]
                yield [argv[0].removeprefix(".venv/bin/"), *argv[1:]]


def extras():
    """The names of pyproject.toml's optional-dependencies ("test", "torch", ...)."""
    text = (ROOT / "pyproject.toml").read_text()
    table = text.split("[project.optional-dependencies]")[1].split("\n[")[0]
    return set(re.findall(r"^(\w+) = ", table, flags=re.M))


def test_every_shell_command_names_what_exists():
    """minicnn commands parse with the real parser; files, extras and scripts they name exist."""
    from minicnn.commands.cli import build_parser
    pages = [(f"docs/{name}.md", text) for name, text in BOOK.items()]
    for name, text in [("README.md", README), ("lessons/README.md", LESSONS_README), *pages]:
        commands = list(shell_commands(text))
        assert len(commands) > 5 or name.startswith("docs/"), name
        for argv in commands:
            program, args = argv[0], argv[1:]
            shipped = [a.lstrip("@") for a in args if a.lstrip("@").startswith(("minicnn/", "lessons/", "tests/"))]
            assert all((ROOT / a).exists() for a in shipped), (name, argv)
            if program == "minicnn":
                try:
                    build_parser().parse_args(args)
                except SystemExit:
                    raise AssertionError(f"{name}: `{' '.join(argv)}` does not parse") from None
            elif program == "pip":
                wanted = {m for a in args for m in re.findall(r"\.\[(\w+)\]", a)}
                assert args[0] == "install" and wanted <= extras(), (name, argv)
            elif program in ("python", "python3"):
                assert args[0] in ("-m", "-c") or (ROOT / args[0]).is_file(), (name, argv)
            else:
                assert program in ("source", "git", "mkdir", "jupytext", "jupyter", "curl", "head",
                                   "dask"), (name, argv)


def test_the_cheap_readme_commands_run_as_written(tmp_path, monkeypatch, capsys):
    """models, layers, explain and evaluate on shipped files, exactly as the README and the book write them
    (--method all left out: it takes long), from a folder where their outputs may land."""
    from minicnn.commands import cli
    monkeypatch.chdir(tmp_path)
    ran = []
    seen = set()
    for argv in shell_commands("\n".join([README, BOOK["own-photo"], BOOK["command-line"]])):
        if argv[0] != "minicnn" or argv[1] not in CHEAP or "all" in argv or "--data" in argv or tuple(argv) in seen:
            continue
        seen.add(tuple(argv))
        args = [str(ROOT / a) if a.startswith("minicnn/data/") else a for a in argv[1:]]
        if "--model" in args and args[args.index("--model") + 1].endswith(".npz"):
            continue                                       # a model the reader converts first
        assert cli.main(args) == 0, (argv, capsys.readouterr().err)
        ran.append(argv[1])
    out = capsys.readouterr().out
    assert set(ran) == set(CHEAP) and len(ran) >= 6
    assert "top-1 accuracy: 81.33% (300 images)" in out          # the comment on the evaluate line


def test_every_python_block_runs_in_order(tmp_path, monkeypatch):
    """The tour and the blocks after it, pasted into one Python session; their figures land in tmp_path."""
    import matplotlib.pyplot as plt
    monkeypatch.chdir(tmp_path)
    namespace = {}
    try:
        for k, block in enumerate(code_blocks("python")):
            exec(compile(block, f"docs/tour.md (python block {k})", "exec"), namespace)
    finally:
        plt.close("all")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat_gradcam.png", "cat_gradcam_by_hand.png"]


def test_the_methods_table_describes_every_registered_method():
    """One row per method of minicnn.explain.registry, its colour-bar column the registry's `value`."""
    from minicnn.explain import registry
    rows = {}
    for line in BOOK["command-line"].splitlines():
        m = re.fullmatch(r"\| `([a-z0-9-]+)` \| (.+) \| `(.+)` \|", line)
        if m:
            assert m.group(1) not in rows, f"two rows for {m.group(1)}"
            rows[m.group(1)] = (m.group(2), m.group(3).replace("\\|", "|"))
    missing = sorted(set(registry.METHODS) - set(rows))
    assert not missing, f"docs/command-line.md's table of methods lacks {missing}: add a row per method"
    assert sorted(rows) == sorted(registry.METHODS)
    for name, (what, value) in rows.items():
        assert value == registry.get(name).value and len(what) > 20, name


def test_the_own_photo_section_says_what_the_models_answer(tmp_path, capsys):
    """The classes and probabilities quoted for the shipped photos, and the size line `explain` prints."""
    from minicnn import load
    from minicnn.commands import cli
    from minicnn.inputs.images import load_image
    from minicnn.inputs.preprocess import preprocess
    from minicnn.inputs.samples import data_path
    from minicnn.layers import softmax
    section = BOOK["own-photo"]
    for photo, model, name, p in [("coffee.png", "vgg_cifar10", "bird", "0.26"),
                                  ("coffee.png", "resnet20_cifar10", "cat", "0.61"),
                                  ("chelsea.png", "vgg_cifar10", "cat", "0.92"),
                                  ("chelsea.png", "resnet20_cifar10", "cat", "1.00")]:
        m = load(model)
        probs = softmax(m.forward(preprocess(load_image(data_path("images", photo)), m.meta["preprocessing"])))[0]
        assert (m.classes[probs.argmax()], f"{probs.max():.2f}") == (name, p), (photo, model)
        assert p in section
    shown = next(line for line in section.splitlines() if line.startswith("model: "))
    assert cli.main(["explain", str(data_path("images", "chelsea.png")), "--model", "resnet20_cifar10",
                     "--out", str(tmp_path / "chelsea.png")]) == 0
    assert capsys.readouterr().out.splitlines()[0] == shown


def test_the_readme_counts_the_lessons_there_are():
    words = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
             "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]
    count = len(sorted((ROOT / "lessons").glob("[0-9][0-9]_*.py")))
    said = re.findall(r"\b(\w+) lessons\b(?!/)", README)             # not the path lessons/
    assert said and all(w in words for w in said), said
    assert {words.index(w) + 1 for w in said} == {count}, (said, count)
