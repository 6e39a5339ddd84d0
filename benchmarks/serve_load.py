r"""Load on `minicnn serve`: many clients sending explain requests at once, on this machine only.

    python benchmarks/serve_load.py                          # 20 clients, 30 s, the default server
    python benchmarks/serve_load.py --clients 20 --seconds 30 --workers 2 --blas-threads 1 \
        --out benchmarks/serve_load.txt

Starts ``minicnn serve --port 0 --quiet`` in a child process (on 127.0.0.1,
a port the system picks), asks each kind of request once on its own for the
reference answer, then lets ``--clients`` threads send requests back to back
(each its own keep-alive connection, cycling through the kinds) for
``--seconds``. Every answer must be a 200 whose maps and predictions equal
the reference exactly. Reports requests per second, latency percentiles and
any status other than 200 or any map that differs; the exit status is 1 if
there was one. Bounded: every request has a 120 s timeout, the run ends after
``--seconds`` plus the requests in flight, and the server is stopped.

``--blas-threads N`` starts the server with ``OPENBLAS_NUM_THREADS``,
``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` set to N; without it the server
keeps NumPy's default (one BLAS thread per core).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

#: (label, sample name, query): the kinds of request the clients cycle through.
KINDS = (
    ("vgg_cifar10 gradcam, cat 32x32", "cat_0018", "model=vgg_cifar10&target=cat"),
    ("resnet20 gradcam 'cat', cat|dog 32x64", "cat_dog", "model=resnet20_cifar10&target=cat"),
    ("resnet20 gradcam 'dog', cat|dog 32x64", "cat_dog", "model=resnet20_cifar10&target=dog"),
)


def start_server(workers: int, blas_threads: int | None) -> tuple[subprocess.Popen, str, int]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if blas_threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(blas_threads)
    proc = subprocess.Popen([sys.executable, "-m", "minicnn.commands.cli", "serve", "--port", "0", "--quiet",
                             "--workers", str(workers)], stdout=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline().strip()
    if not line.startswith("minicnn serving on http://127.0.0.1:"):
        proc.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    url = line.split(" on ", 1)[1]
    return proc, url, int(url.rstrip("/").rsplit(":", 1)[1])


def fetch(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None):
    conn.request(method, path, body=body)
    r = conn.getresponse()
    return r.status, r.read()


def essence(answer: dict) -> tuple:
    """What must not change between requests: every map's numbers, the predictions, target and layer."""
    return (json.dumps({k: v["data"] for k, v in answer["maps"].items()}), json.dumps(answer["predictions"]),
            answer["target"]["index"], answer["layer"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--workers", type=int, default=2, help="minicnn serve --workers")
    ap.add_argument("--blas-threads", type=int, default=None, help="BLAS threads in the server (default: NumPy's)")
    ap.add_argument("--out", default=None, help="append the report to this file")
    args = ap.parse_args()

    load_before = os.getloadavg()
    proc, url, port = start_server(args.workers, args.blas_threads)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        images = {name: fetch(conn, "GET", f"/api/samples/{name}")[1] for _, name, _ in KINDS}
        reference, single = {}, {}
        for label, name, query in KINDS:
            times = []
            for _ in range(5):                      # one client alone: the latency without contention
                t = time.perf_counter()
                status, body = fetch(conn, "POST", f"/api/explain?{query}", images[name])
                times.append(time.perf_counter() - t)
                assert status == 200, body
            reference[label] = essence(json.loads(body))
            single[label] = float(np.median(times))
        conn.close()

        latencies: list[tuple[str, float]] = []
        problems: list[str] = []
        lock = threading.Lock()
        stop_at = time.monotonic() + args.seconds

        def client(i: int) -> None:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            n = i
            while time.monotonic() < stop_at:
                label, name, query = KINDS[n % len(KINDS)]
                n += 1
                t = time.perf_counter()
                try:
                    status, body = fetch(c, "POST", f"/api/explain?{query}", images[name])
                except (OSError, http.client.HTTPException) as e:
                    with lock:
                        problems.append(f"client {i}: {type(e).__name__}: {e}")
                    c.close()
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                    continue
                dt = time.perf_counter() - t
                ok = status == 200 and essence(json.loads(body)) == reference[label]
                with lock:
                    latencies.append((label, dt))
                    if not ok:
                        problems.append(f"client {i}: {label}: status {status}" +
                                        ("" if status != 200 else ", maps differ from the single request's"))
            c.close()

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=args.seconds + 180)
        elapsed = time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    load_after = os.getloadavg()

    ms = np.array([dt for _, dt in latencies]) * 1000
    blas = f"{args.blas_threads} BLAS thread(s)" if args.blas_threads else "NumPy's default BLAS threads"
    lines = [
        f"minicnn serve under load, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}",
        f"server: --workers {args.workers}, {blas}; load average before {load_before[0]:.1f}, "
        f"after {load_after[0]:.1f} (the machine is shared)",
        f"{args.clients} clients for {args.seconds:.0f} s, keep-alive, cycling through {len(KINDS)} kinds of request:",
        *(f"  {label}: {1000 * single[label]:.1f} ms alone (median of 5)" for label, _, _ in KINDS),
        f"requests: {len(ms)} in {elapsed:.1f} s = {len(ms) / elapsed:.1f} per second; "
        f"latency p50 {np.percentile(ms, 50):.0f} ms, p95 {np.percentile(ms, 95):.0f} ms, "
        f"max {ms.max():.0f} ms" if len(ms) else "requests: none completed",
        f"statuses other than 200 or maps unlike a single request's: {len(problems)}",
        *problems[:10],
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(report + "\n")
    return 1 if problems or not len(ms) else 0


if __name__ == "__main__":
    sys.exit(main())
