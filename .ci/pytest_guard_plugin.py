"""A pytest plugin for .ci/guard.py: it records that pytest collected, and that it finished.

Loaded with ``-p pytest_guard_plugin`` (guard.py puts this folder on PYTHONPATH
and the option in PYTEST_ADDOPTS). It writes two JSON files into the folder
named by the environment variable CI_GUARD_DIR:

- ``collected.json`` as soon as collection ends: {"collected": N};
- ``finished.json`` when the session ends normally: {"exitstatus": S, "counts": {...}}.

A test that ends or replaces the pytest process (os._exit, os.execv, a
signal) leaves the first file without the second; guard.py then fails.

Only the pytest process that guard.py started writes them: the plugin takes
CI_GUARD_DIR out of the environment as soon as it is loaded, so a test that
runs pytest itself (tests/docs/test_ci_guard.py does) cannot overwrite the outer
run's records with its own counts. Standard library only.
"""

import json
import os

# Read once, at import, and removed: child processes started by the tests never see it.
_FOLDER = os.environ.pop("CI_GUARD_DIR", None)


def _write(name: str, data: dict) -> None:
    folder = _FOLDER
    if not folder:
        return
    path = os.path.join(folder, name)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(path + ".tmp", path)


def pytest_collection_finish(session):
    _write("collected.json", {"collected": len(session.items)})


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    counts = {}
    if reporter is not None:
        for outcome, reports in reporter.stats.items():
            if outcome in ("passed", "failed", "skipped", "xfailed", "xpassed", "error", "deselected"):
                # a test counts once per outcome (setup/teardown reports of passed tests are not in stats)
                counts[outcome] = len({getattr(r, "nodeid", id(r)) for r in reports})
    _write("finished.json", {"exitstatus": int(exitstatus), "counts": counts})
