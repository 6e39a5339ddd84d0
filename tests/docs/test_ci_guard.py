"""The CI guard (.ci/guard.py): a pytest run that does not finish must fail CI.

Each case runs the guard on a throwaway test folder in tmp_path, with this
interpreter's pytest: a suite that passes, and suites where one test ends
(os._exit) or replaces (os.execv) the pytest process, which exit 0 and
would pass a plain ``pytest && echo ok``.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUARD = ROOT / ".ci" / "guard.py"

sys.path.insert(0, str(GUARD.parent))
import guard  # noqa: E402

PASSING = "def test_one():\n    assert 1 + 1 == 2\n\n\ndef test_two():\n    pass\n"
ENDERS = {
    "os._exit": "import os\n\n\ndef test_ends_the_process():\n    os._exit(0)\n",
    "os.execv": ("import os, sys\n\n\ndef test_replaces_the_process():\n"
                 "    os.execv(sys.executable, [sys.executable, '-c', 'pass'])\n"),
}


def run_guard(folder: Path, *options: str) -> subprocess.CompletedProcess:
    command = f"'{sys.executable}' -m pytest -q -p no:cacheprovider --rootdir '{folder}' '{folder}'"
    return subprocess.run([sys.executable, str(GUARD), *options, "--", command], capture_output=True, text=True,
                          timeout=120, cwd=folder)


def test_a_suite_that_finishes_passes(tmp_path):
    (tmp_path / "test_ok.py").write_text(PASSING)
    done = run_guard(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ci guard: ok: pytest ran all 2 collected tests: 2 passed, 0 skipped" in done.stdout


@pytest.mark.parametrize("how", sorted(ENDERS))
def test_a_test_that_ends_or_replaces_pytest_fails_the_guard(tmp_path, how):
    (tmp_path / "test_ok.py").write_text(PASSING)
    (tmp_path / "test_zz_end.py").write_text(ENDERS[how])
    done = run_guard(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ci guard: FAILED: pytest collected 3 tests but its session never ended" in done.stdout


NESTED = ("import subprocess, sys\n\n\ndef test_runs_pytest_itself(tmp_path):\n"
          "    (tmp_path / 'test_inner.py').write_text('def test_inner():\\n    pass\\n')\n"
          "    done = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', str(tmp_path)],\n"
          "                          capture_output=True, text=True, cwd=tmp_path)\n"
          "    assert '1 passed' in done.stdout, done.stdout\n")


def test_a_test_that_runs_pytest_itself_does_not_overwrite_the_outer_counts(tmp_path):
    # The nested run inherits the environment; were CI_GUARD_DIR still in it, the inner
    # run's "collected 1" would replace the outer "collected 3" and fail a good run.
    (tmp_path / "test_ok.py").write_text(PASSING)
    (tmp_path / "test_zz_nested.py").write_text(NESTED)
    done = run_guard(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ci guard: ok: pytest ran all 3 collected tests: 3 passed, 0 skipped" in done.stdout


def test_a_failing_test_fails_the_guard(tmp_path):
    (tmp_path / "test_bad.py").write_text("def test_bad():\n    assert False\n")
    done = run_guard(tmp_path)
    assert done.returncode == 1
    assert "ci guard: FAILED: the command exited with status 1" in done.stdout


def test_no_skips_fails_a_stage_that_skipped_a_test(tmp_path):
    (tmp_path / "test_ok.py").write_text(PASSING + "\n\ndef test_skipped():\n"
                                         "    import pytest\n    pytest.skip('no')\n")
    assert run_guard(tmp_path).returncode == 0
    done = run_guard(tmp_path, "--no-skips")
    assert done.returncode == 1
    assert "ci guard: FAILED: 1 of the 3 tests were skipped, and this stage must run every one" in done.stdout


def test_summary_lines_are_parsed():
    assert guard.parse_summary("546 passed, 19 skipped in 83.80s (0:01:23)") == {"passed": 546, "skipped": 19}
    assert guard.parse_summary("===== 3 passed, 1 warning in 0.01s =====") == {"passed": 3, "warnings": 1}
    assert guard.parse_summary("2 failed, 1 passed, 1 error in 1.0s") == {"failed": 2, "passed": 1, "error": 1}
    assert guard.parse_summary("tests/test_x.py ....") is None


def test_check_needs_the_summary_line_and_every_test(tmp_path):
    import json
    (tmp_path / "collected.json").write_text(json.dumps({"collected": 5}))
    (tmp_path / "finished.json").write_text(json.dumps({"exitstatus": 0, "counts": {"passed": 4, "skipped": 1}}))
    assert guard.check(0, ["4 passed, 1 skipped in 1.00s"], str(tmp_path))[0]
    ok, why = guard.check(0, ["....."], str(tmp_path))
    assert not ok and "summary line" in why
    (tmp_path / "finished.json").write_text(json.dumps({"exitstatus": 0, "counts": {"passed": 3, "skipped": 1}}))
    ok, why = guard.check(0, ["3 passed, 1 skipped in 1.00s"], str(tmp_path))
    assert not ok and "collected 5 tests but accounted for 4" in why


def test_ci_runs_the_readme_command_under_the_guard():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 .ci/guard.py -- " in ci
    assert "set -euo pipefail" in ci


def test_ci_then_runs_the_torch_tests_with_exactly_the_pinned_cpu_torch():
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
             if line.startswith("python3 .ci/guard.py")]
    assert len(lines) == 3 and "pytest -q'" in lines[0]                 # the README's command comes first
    torch_stage = lines[1]
    assert torch_stage.startswith("python3 .ci/guard.py --no-skips -- ")
    installs = re.findall(r"pip install -q (\S+)", torch_stage)
    assert installs == ["torch==2.13.0"], "install exactly torch==2.13.0 (the CPU wheel on local disk), nothing else"
    assert torch_stage.rstrip().endswith(".venv/bin/python -m pytest -q -m torch'")


def test_ci_then_runs_the_dask_tests_with_the_distributed_extra():
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
             if line.startswith("python3 .ci/guard.py")]
    dask_stage = lines[2]
    assert dask_stage.startswith("python3 .ci/guard.py --no-skips -- ")
    assert re.findall(r"pip install -q (\S+)", dask_stage) == ['-e'] and '".[distributed]"' in dask_stage
    assert dask_stage.rstrip().endswith(".venv/bin/python -m pytest -q -m dask'")


def test_a_skip_for_want_of_torch_needs_the_torch_marker(tmp_path):
    # tests/conftest.py fails an unmarked test that skips because torch is missing: it would never run in CI.
    (tmp_path / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    torch: needs torch\n")
    (tmp_path / "test_t.py").write_text(
        "import pytest\n\n\n@pytest.mark.torch\ndef test_marked():\n    pytest.skip('needs torch')\n\n\n"
        "def test_unmarked():\n    pytest.skip('reading checkpoints needs torch')\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert "1 failed, 1 skipped" in done.stdout, done.stdout
    assert "test_unmarked skipped (Skipped: reading checkpoints needs torch) but is not marked" in done.stdout
