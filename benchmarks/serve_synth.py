r"""What the explorer's class visualisation and attack requests cost, on this machine.

    python benchmarks/serve_synth.py                               # prints the table
    python benchmarks/serve_synth.py --repeats 3 --out benchmarks/serve_synth.txt

Serves every shipped model from a thread of this process (127.0.0.1, a port the system
picks) and times, one request at a time, with the page's defaults:

- ``POST /api/visualize`` (128 steps, Fourier parameterisation, seed 0) for one class of
  each model: computed (a new seed each repetition, so the cache never answers), then the
  same request again (answered from the cache);
- ``POST /api/attack`` FGSM and PGD (10 steps), epsilon 8/255, with the maps of Grad-CAM and
  Guided Backprop for the true and the adversarial class: on the cat|dog image (32x64 for
  ResNet-20, 32x32 for VGG) and on the Chelsea photograph (224x224 for mobilenet_v2).

Every answer must be a 200. Reports the median and the largest of ``--repeats`` in
seconds (the server's own ``seconds``: its work, not the transfer), with the load average
before and after: on a shared machine, rerun it quiet. A few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from minicnn.server import ModelStore, make_server  # noqa: E402

#: (model, class to visualise, sample to attack)
CASES = (("resnet20_cifar10", "cat", "cat_dog"), ("vgg_cifar10", "dog", "cat_dog"),
         ("mobilenet_v2", "goldfish", "chelsea"))


def post(port: int, path: str, body: bytes = b"") -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        conn.request("POST", path, body, {"Content-Length": str(len(body))})
        r = conn.getresponse()
        answer = json.loads(r.read())
        if r.status != 200:
            raise SystemExit(f"{path}: HTTP {r.status}: {answer.get('error')}")
        return answer
    finally:
        conn.close()


def sample(port: int, name: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", f"/api/samples/{name}")
        return conn.getresponse().read()
    finally:
        conn.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=None, help="also write the table to this file")
    args = p.parse_args(argv)
    load_before = os.getloadavg()
    server = make_server("127.0.0.1", 0, store=ModelStore(workers=1))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    port = server.server_address[1]
    rows = []
    try:
        for model, cls, image_name in CASES:
            computed, cached = [], []
            for seed in range(args.repeats):
                query = f"/api/visualize?model={model}&class={cls}&seed={seed}"
                a = post(port, query)
                assert not a["cached"]
                computed.append(a["seconds"])
                b = post(port, query)
                assert b["cached"]
                cached.append(b["seconds"])
            rows.append((model, f"visualize '{cls}', 128 steps, fourier", computed))
            rows.append((model, "  the same again (cache)", cached))
            image = sample(port, image_name)
            for attack in ("fgsm", "pgd"):
                times = [post(port, f"/api/attack?model={model}&attack={attack}&epsilon=8/255"
                                    f"&method=gradcam,guided-backprop", image)["seconds"]
                         for _ in range(args.repeats)]
                what = "FGSM" if attack == "fgsm" else "PGD 10 steps"
                rows.append((model, f"attack {image_name}, {what}, + 2 x (gradcam, guided-backprop)", times))
    finally:
        server.shutdown()
        server.server_close()
    load_after = os.getloadavg()
    lines = [f"minicnn serve: class visualisation and attack requests, one at a time, {args.repeats} repeats",
             f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}  {platform.machine()}  "
             f"{os.cpu_count()} cores  load average before {load_before[0]:.2f} {load_before[1]:.2f} "
             f"{load_before[2]:.2f}, after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}",
             "", f"{'model':<18} {'request':<62} {'median s':>9} {'max s':>8}"]
    for model, what, times in rows:
        lines.append(f"{model:<18} {what:<62} {np.median(times):>9.3f} {max(times):>8.3f}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
