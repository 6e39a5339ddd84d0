"""Shared test settings, and guards that keep every test independent of the caller's environment.

- A bounded hypothesis profile so the suite stays fast on 2 cores.
- Every test, and every fixture of any scope, runs without the variables
  through which a user steers minicnn (``MINICNN_*``: another weights folder,
  lesson figures, ...), so a developer's shell cannot turn tests into skips
  or failures. (Code that runs at collection, before any fixture, must not
  read them either; ``MINICNN_LESSON_TIME_LIMIT``, a setting of the lesson
  tests themselves, is the one read there on purpose.)
- Every test must leave the process as it found it: the working folder,
  NumPy's floating-point error settings and the hypothesis profile are
  checked after each test.
- The whole session must leave the checkout as it found it: no file is
  created, changed or deleted outside the test's own tmp_path (``git status``
  before and after, ignored files included).
- Tests that need PyTorch carry the ``torch`` marker: they skip where torch
  is not installed (CI's main test step) and CI's torch step runs exactly them
  (``pytest -m torch``). A test that skips for want of torch without the
  marker fails, so that none is left out of that stage. Likewise the ``dask``
  marker: the cluster tests skip without Dask, and CI's dask step runs them.
"""

import importlib.util
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: Caches that tools write on their own; anything else new in the checkout is a test writing where it must not.
_TOOL_CACHES = ("__pycache__", ".pytest_cache", ".hypothesis", ".venv", ".egg-info", ".ruff_cache")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def _pop_minicnn_variables() -> dict[str, str]:
    return {name: os.environ.pop(name) for name in list(os.environ) if name.startswith("MINICNN_")}


@pytest.fixture(scope="session", autouse=True)
def session_without_minicnn_variables():
    """Clear MINICNN_* for the whole session, so module- and session-scoped fixtures run without them too.

    (Set up before any narrower fixture; restored when the session ends.)
    """
    saved = _pop_minicnn_variables()
    yield
    _pop_minicnn_variables()
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def isolated_process():
    """Clear MINICNN_* variables; fail a test that changes the cwd, NumPy's error settings or the profile.

    Uses no other fixture, so it is set up before and torn down after the
    test's own ``monkeypatch`` (whose chdir and setenv are undone by then).
    """
    saved = _pop_minicnn_variables()
    cwd, errors, profile = os.getcwd(), np.geterr(), settings._current_profile
    yield
    _pop_minicnn_variables()
    os.environ.update(saved)
    assert os.getcwd() == cwd, f"the test changed the working folder to {os.getcwd()} and left it"
    assert np.geterr() == errors, f"the test changed NumPy's error settings to {np.geterr()}"
    assert settings._current_profile == profile, "the test changed the hypothesis profile"


def _checkout_state() -> set[str] | None:
    """``git status`` lines (ignored files too, tool caches left out), or None outside a git checkout."""
    try:
        done = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return {line for line in done.stdout.splitlines() if not any(c in line for c in _TOOL_CACHES)}


@pytest.fixture(scope="session", autouse=True)
def checkout_left_unchanged():
    before = _checkout_state()
    yield
    after = _checkout_state()
    if before is not None and after is not None and before != after:
        changed = sorted(after ^ before)
        pytest.fail(f"the tests changed the checkout ({len(changed)} entries): {changed[:5]}", pytrace=False)


def _torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def pytest_runtest_setup(item):
    if item.get_closest_marker("torch") and not _torch_installed():
        pytest.skip("needs PyTorch (pip install torch==2.13.0); CI's torch step runs these tests")
    if item.get_closest_marker("dask") and importlib.util.find_spec("distributed") is None:
        pytest.skip("needs Dask (pip install -e '.[distributed]'); CI's dask step runs these tests")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not item.get_closest_marker("torch") and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
        if "torch" in reason.lower():
            report.outcome = "failed"
            report.longrepr = (f"{item.nodeid} skipped ({reason}) but is not marked @pytest.mark.torch: mark it, "
                               f"so that CI's torch step runs it")
