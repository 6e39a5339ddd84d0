#!/usr/bin/env python3
"""Run a test command and fail unless pytest finished with every collected test accounted for.

    python3 .ci/guard.py -- 'python3 -m venv .venv && ... && .venv/bin/python -m pytest -q'
    python3 .ci/guard.py --no-skips -- '... && .venv/bin/python -m pytest -q -m torch'

The command runs in a shell, unchanged; its output is passed through line by
line. The guard adds its plugin (``pytest_guard_plugin.py``, beside this file)
through PYTEST_ADDOPTS and PYTHONPATH, so pytest writes what it collected
and, at the very end of the session, what happened. The guard exits 0 only if

- the command exited 0;
- pytest collected at least one test and finished its session (a test that
  calls os._exit, os.execv or kills the process never gets there);
- the output ends with pytest's summary line ("N passed, M skipped in T s")
  and its counts equal the plugin's;
- no test failed or errored, and passed + skipped + xfailed + xpassed equals
  the number collected;
- with ``--no-skips``, no test was skipped either (a stage whose every test
  must run, such as CI's torch step: a broken install would skip them all).

Otherwise it prints one line ``ci guard: FAILED: why`` and exits 1.
Standard library only (it runs before any virtual environment exists).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SUMMARY = re.compile(r"^=*\s*((?:\d+ (?:passed|failed|skipped|deselected|xfailed|xpassed|errors?|warnings?)"
                     r"(?:, )?)+) in [\d.]+s")
WORDS = {"error": "error", "errors": "error", "warning": "warnings", "warnings": "warnings"}


def parse_summary(line: str) -> dict[str, int] | None:
    """{"passed": 546, "skipped": 19, ...} from pytest's closing line, or None if it is not one."""
    m = SUMMARY.match(line.strip())
    if not m:
        return None
    counts = {}
    for number, word in re.findall(r"(\d+) (\w+)", m.group(1)):
        counts[WORDS.get(word, word)] = int(number)
    return counts


def check(returncode: int, output_lines: list[str], folder: str, *, allow_skips: bool = True) -> tuple[bool, str]:
    """(ok, message) for one finished run of the command; ``allow_skips=False`` fails a run that skipped a test."""
    def read(name):
        try:
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    collected, finished = read("collected.json"), read("finished.json")
    if collected is None:
        return False, f"pytest never finished collecting (command exit status {returncode})"
    n = collected["collected"]
    if finished is None:
        return False, (f"pytest collected {n} tests but its session never ended: a test ended or replaced the "
                       f"pytest process (command exit status {returncode})")
    if returncode != 0:
        return False, f"the command exited with status {returncode} (pytest's own status {finished['exitstatus']})"
    summaries = [parse_summary(line) for line in output_lines]
    summaries = [s for s in summaries if s is not None]
    if not summaries:
        return False, "pytest's summary line ('N passed ... in T s') was never printed"
    printed, counts = summaries[-1], finished["counts"]
    if n == 0:
        return False, "pytest collected no test"
    bad = {k: counts.get(k, 0) for k in ("failed", "error") if counts.get(k, 0)}
    if bad:
        return False, f"tests did not pass: {bad}"
    accounted = sum(counts.get(k, 0) for k in ("passed", "skipped", "xfailed", "xpassed"))
    if accounted != n:
        return False, f"pytest collected {n} tests but accounted for {accounted}: {counts}"
    if printed.get("passed", 0) != counts.get("passed", 0):
        return False, f"the summary line says {printed.get('passed', 0)} passed, the session recorded {counts}"
    if not allow_skips and counts.get("skipped", 0):
        return False, f"{counts['skipped']} of the {n} tests were skipped, and this stage must run every one"
    return True, (f"pytest ran all {n} collected tests: {counts.get('passed', 0)} passed, "
                  f"{counts.get('skipped', 0)} skipped")


def run(command: str, *, allow_skips: bool = True) -> int:
    with tempfile.TemporaryDirectory(prefix="ci-guard-") as folder:
        env = dict(os.environ)
        env["CI_GUARD_DIR"] = folder
        env["PYTHONPATH"] = HERE + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTEST_ADDOPTS"] = (env.get("PYTEST_ADDOPTS", "") + " -p pytest_guard_plugin").strip()
        lines: list[str] = []
        with subprocess.Popen(command, shell=True, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, errors="replace", bufsize=1) as proc:
            for line in proc.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                lines.append(line.rstrip("\n"))
        ok, message = check(proc.returncode, lines, folder, allow_skips=allow_skips)
    print(f"ci guard: {'ok' if ok else 'FAILED'}: {message}", flush=True)
    return 0 if ok else 1


def main(argv: list[str]) -> int:
    no_skips = argv[:1] == ["--no-skips"]
    argv = argv[1:] if no_skips else argv
    if len(argv) != 2 or argv[0] != "--":
        print("usage: guard.py [--no-skips] -- 'COMMAND'", file=sys.stderr)
        return 2
    return run(argv[1], allow_skips=not no_skips)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
