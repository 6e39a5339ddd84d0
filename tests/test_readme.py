"""The README's promises: its tour runs as written, and CI runs exactly its test command."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def code_blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_the_tour_runs_as_written():
    tour = code_blocks("python")[0]
    exec(compile(tour, "README.md (tour)", "exec"), {})


def test_ci_runs_exactly_the_readme_test_command():
    test_command = next(block.strip() for block in code_blocks("sh") if "pytest" in block)
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "'" not in test_command
    assert f"python3 .ci/guard.py -- '{test_command}'" in ci      # the command itself, run under the guard
