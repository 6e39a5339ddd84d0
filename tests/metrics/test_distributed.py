"""The scorecard, the sanity check and evaluate on a Dask cluster give the serial run's results.

A scheduler and two single-threaded workers are started once for the module, as a user starts them
by hand (the ``dask scheduler`` and ``dask worker`` commands, on 127.0.0.1); the ``--workers 2`` path
starts its own local cluster. The model is ResNet-20 on the shipped images brought to 12x12 (saved to a weights file the
workers load), so every run takes seconds. Per-image values and the JSON's numbers are compared to
1e-5 (float32 logits of scale ~10, summed in batches of another size, may differ in the last bits and
move a probability by ~1e-6: CI runs OpenBLAS's Haswell kernel); the printed tables digit for digit.

Marked ``dask``: skipped where Dask is not installed (README's test command installs only
``.[test]``); CI's dask step installs ``.[distributed]`` and runs exactly these (``pytest -m dask``).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from test_explain_helpers import shipped

from metrics.test_metrics_scorecard import TINY_PREP
from minicnn.commands.cli import main
from minicnn.metrics import distributed as dist
from minicnn.metrics import sanity, scorecard
from minicnn.models.evaluate import evaluate, evaluate_on, predictions_task
from minicnn.models.weights import save
from minicnn.util.cluster import Cluster, ClusterError, run_tasks

pytestmark = pytest.mark.dask

METHODS = "gradcam,saliency"


def assert_same_json(a, b, path="") -> None:
    """Two JSON results alike in every key, string and null, and in every number to 1e-5 (timings aside)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a:
            if k != "seconds_per_image":
                assert_same_json(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (u, v) in enumerate(zip(a, b)):
            assert_same_json(u, v, f"{path}[{i}]")
    elif isinstance(a, float) and not isinstance(a, bool):
        assert isinstance(b, float) and abs(a - b) <= 1e-5, (path, a, b)
    else:
        assert a == b, (path, a, b)


def without_timings(text: str) -> str:
    """A printed scorecard with its seconds-per-image cells (the last of a method's row) blanked."""
    return re.sub(r"\| \d+\.\d{4} \|$", "| (s) |", text, flags=re.MULTILINE)


def assert_same_values(a: dict, b: dict):
    """Per-image values of two runs ({key: {metric: array}}) agree to 1e-5 (probabilities, areas, correlations)."""
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].keys() == b[key].keys(), key
        for metric, v in a[key].items():
            if metric == "seconds_per_image":
                continue
            v, w = np.asarray(v, dtype=np.float64), np.asarray(b[key][metric], dtype=np.float64)
            assert v.shape == w.shape, (key, metric)
            np.testing.assert_allclose(w, v, rtol=0, atol=1e-5 * max(1.0, np.abs(v).max()), err_msg=f"{key} {metric}")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """ResNet-20 reading 12x12 images, as a weights file the workers load."""
    model = shipped("resnet20_cifar10")
    model.meta["preprocessing"] = TINY_PREP
    path = tmp_path_factory.mktemp("weights") / "resnet20_12px.npz"
    save(model, path)
    return str(path)


@pytest.fixture(scope="module")
def model(weights):
    from minicnn.models.weights import load
    return load(weights)


def _start(argv, folder):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.Popen(argv, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """The address of a ``dask scheduler`` with two ``dask worker`` processes (one thread each), on 127.0.0.1."""
    import distributed  # lazy: the module is skipped without Dask
    folder = tmp_path_factory.mktemp("cluster")
    dask = os.path.join(os.path.dirname(sys.executable), "dask")
    file = str(folder / "scheduler.json")
    procs = [_start([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--scheduler-file", file], folder)]
    for i in range(2):
        procs.append(_start([dask, "worker", "--scheduler-file", file, "--nthreads", "1", "--nworkers", "1",
                             "--no-dashboard", "--host", "127.0.0.1", "--local-directory", str(folder / f"w{i}")],
                            folder))
    try:
        for _ in range(300):
            if os.path.exists(file):
                break
            time.sleep(0.1)
        with distributed.Client(scheduler_file=file, timeout="30s") as client:
            client.wait_for_workers(2, timeout=120)
            address = client.scheduler.address
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="module")
def serial_card(model):
    return scorecard(model, methods=METHODS, images=8, seed=3, progress=False)


def test_the_scorecard_on_a_scheduler_is_the_serial_one(model, weights, scheduler, serial_card):
    card = scorecard(model, methods=METHODS, images=8, seed=3, progress=False, source=weights,
                     cluster=Cluster(scheduler=scheduler, chunk=3))      # chunks of 3, 3, 2 images; 2 of 1 mosaic
    assert card.mosaics == serial_card.mosaics == 2
    assert_same_values(serial_card.values, card.values)
    assert_same_json(card.json(), serial_card.json())
    assert without_timings(card.table()) == without_timings(serial_card.table())
    for key, curves in serial_card.curves.items():
        for which, curve in curves.items():
            np.testing.assert_allclose(card.curves[key][which], curve, atol=1e-5)
    for key, maps in serial_card.examples.items():
        np.testing.assert_allclose(card.examples[key], maps, rtol=1e-5, atol=1e-6 * np.abs(maps).max())


def test_the_sanity_check_on_a_scheduler_is_the_serial_one(model, weights, scheduler):
    serial = sanity(model, methods="gradcam", images=3, seed=2, progress=False)
    result = sanity(model, methods="gradcam", images=3, seed=2, progress=False, source=weights,
                    cluster=Cluster(scheduler=scheduler, chunk=2))
    assert_same_values(serial.values, result.values)
    assert_same_json(result.json(), serial.json())
    assert result.tables() == serial.tables()
    np.testing.assert_allclose(result.examples["gradcam"], serial.examples["gradcam"], rtol=1e-5, atol=1e-7)


def test_evaluate_on_a_scheduler_counts_what_the_serial_run_counts(model, weights, scheduler):
    from minicnn.inputs.datasets import open_dataset
    from minicnn.inputs.samples import DATA_DIR
    dataset = open_dataset(DATA_DIR / "cifar10", "test")
    serial = evaluate(model, dataset, 16, 40)
    result = evaluate_on(Cluster(scheduler=scheduler, chunk=7), weights, dataset, 16, 40, model=model)
    assert (result.correct, result.total) == (serial.correct, serial.total)
    assert 0 < serial.correct < 40


def test_a_worker_killed_mid_run_is_survived(model, weights, scheduler, serial_card, monkeypatch):
    import distributed  # lazy: the module is skipped without Dask
    killed = []
    real = dist.run_tasks

    def killing(tasks, **kwargs):
        on_result = kwargs["on_result"]

        def kill_after_first(i, result):
            on_result(i, result)
            if not killed:
                with distributed.Client(scheduler, timeout="10s") as client:
                    pids = client.run(os.getpid)
                    who = client.processing()                 # a worker with a task in hand
                busy = [w for w, keys in who.items() if keys] or list(pids)
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(pids[busy[0]])
        return real(tasks, **{**kwargs, "on_result": kill_after_first})

    monkeypatch.setattr(dist, "run_tasks", killing)
    card = scorecard(model, methods=METHODS, images=8, seed=3, progress=False, source=weights,
                     cluster=Cluster(scheduler=scheduler, chunk=2))
    assert killed
    assert_same_values(serial_card.values, card.values)
    assert_same_json(card.json(), serial_card.json())


def count_tasks(monkeypatch, stop_after=None):
    """Record every task run_tasks is given (its method keys); with ``stop_after``, interrupt after that many."""
    seen, real = [], dist.run_tasks

    def counting(tasks, **kwargs):
        seen.extend(args[2] for _, args in tasks)              # the keys a task computes
        on_result, done = kwargs["on_result"], []

        def interrupting(i, result):
            on_result(i, result)
            done.append(i)
            if stop_after is not None and len(done) >= stop_after:
                raise KeyboardInterrupt
        return real(tasks, **{**kwargs, "on_result": interrupting})
    monkeypatch.setattr(dist, "run_tasks", counting)
    return seen


def test_an_interrupted_run_resumes_and_a_new_method_computes_only_what_is_missing(model, weights, scheduler,
                                                                                  serial_card, tmp_path, monkeypatch):
    cluster = Cluster(scheduler=scheduler, chunk=4, cache=str(tmp_path / "cache"))   # 2 of 4 images, 2 of 1 mosaic
    with monkeypatch.context() as m:
        first = count_tasks(m, stop_after=1)
        with pytest.raises(KeyboardInterrupt):
            scorecard(model, methods="gradcam", images=8, seed=3, progress=False, source=weights, cluster=cluster)
    assert len(first) == 4
    with monkeypatch.context() as m:
        resumed = count_tasks(m)
        scorecard(model, methods="gradcam", images=8, seed=3, progress=False, source=weights, cluster=cluster)
    assert len(resumed) == 3                                   # the chunks the interrupted run had not finished
    with monkeypatch.context() as m:
        again = count_tasks(m)
        card = scorecard(model, methods=METHODS, images=8, seed=3, progress=False, source=weights, cluster=cluster)
    assert again == [["saliency"]] * 4                          # only the new method, on every chunk
    assert_same_values(serial_card.values, card.values)
    assert_same_json(card.json(), serial_card.json())
    with monkeypatch.context() as m:
        nothing = count_tasks(m)
        other = scorecard(model, methods=METHODS, images=8, seed=4, progress=False, source=weights, cluster=cluster)
    assert len(nothing) == 4 and other.json() != card.json()    # another seed is another key: all computed again


def test_a_task_that_keeps_failing_is_one_line_naming_its_images(scheduler):
    cluster = Cluster(scheduler=scheduler, retries=1)
    images = np.zeros((2, 32, 32, 3), np.uint8)
    tasks = [(predictions_task, ("no_such_model", "0" * 64, images, {}, 2))]
    with pytest.raises(ClusterError) as e:
        run_tasks(tasks, cluster=cluster, sizes=[2], names=["images 10-11"], progress=False)
    message = str(e.value)
    assert "\n" not in message and "images 10-11" in message and "2 tries" in message and "no_such_model" in message


def test_scorecard_with_two_local_workers_or_a_scheduler_prints_and_writes_what_the_serial_run_does(
        weights, scheduler, tmp_path, capsys):
    argv = ["scorecard", "--model", weights, "--methods", "gradcam", "--images", "4", "--seed", "5"]
    assert main([*argv, "--json", str(tmp_path / "serial.json")]) == 0
    serial_out = capsys.readouterr().out
    serial = json.loads((tmp_path / "serial.json").read_text())
    for name, flags in (("local", ["--workers", "2", "--chunk-size", "2"]), ("remote", ["--scheduler", scheduler])):
        assert main([*argv, "--json", str(tmp_path / f"{name}.json"), *flags]) == 0
        out = capsys.readouterr().out
        assert_same_json(json.loads((tmp_path / f"{name}.json").read_text()), serial)
        assert without_timings(serial_out.replace("serial.json", f"{name}.json")) == without_timings(out)


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:1", "no-such-scheme://x"])
def test_a_scheduler_that_cannot_be_reached_is_one_line_within_seconds(address, capsys):
    began = time.monotonic()
    status = main(["scorecard", "--model", "resnet20_cifar10", "--methods", "gradcam", "--images", "1",
                   "--scheduler", address])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and address in err[0] and "Traceback" not in err[0]
    assert time.monotonic() - began < 20                  # the 5 s timeout, and the start-up around it


def test_sanity_and_evaluate_on_a_scheduler_print_what_the_serial_runs_do(weights, scheduler, tmp_path, capsys):
    for argv in (["sanity", "--model", weights, "--methods", "gradcam", "--images", "2", "--mode", "independent"],
                 ["evaluate", "--model", weights, "--limit", "30", "--batch-size", "8"]):
        assert main(argv) == 0
        serial = capsys.readouterr().out
        assert main([*argv, "--scheduler", scheduler, "--chunk-size", "7"]) == 0
        assert capsys.readouterr().out == serial
