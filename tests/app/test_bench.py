"""``minicnn bench``: the structure of its table and JSON, on small models, in a few seconds.

These tests check what the bench reports and that its comparison does the
same work as minicnn; they never check how fast anything is.
"""

import argparse
import json
import os

import numpy as np
import pytest

from minicnn.bench import cases, machine, report, timing, twins
from minicnn.commands import bench as bench_command
from minicnn.errors import MinicnnError, OutputError
from minicnn.explain import default_layer
from minicnn.inputs.datasets import class_names
from minicnn.inputs.samples import DATA_DIR
from minicnn.models import zoo

#: The shipped CIFAR-10 samples (300 JPEGs): the data set of the ``evaluate`` operation here.
SAMPLES = str(DATA_DIR / "cifar10")
WITHOUT_DATA = tuple(op for op in cases.OPERATIONS if op != "evaluate")


def small_case(name, data=None):
    """A random-weight VGG in miniature on 8x8 images, whatever the name: fast, needs no weights file."""
    model = zoo.vgg([4, "M", 8, "M"], hidden=(16,), pool_size=(2, 2), num_classes=10)
    model.meta.update(classes=class_names("cifar10"), preprocessing={
        "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "resize": "exact", "size": [8, 8]})
    rng = np.random.default_rng(0)
    case = cases.Case(name, model, rng.standard_normal((1, 3, 8, 8), np.float32),
                      batch=rng.standard_normal((4, 3, 8, 8), np.float32), data=data,
                      operations=cases.OPERATIONS if data else WITHOUT_DATA)
    case.target = int(np.argmax(model.forward(case.x)[0]))
    case.layer = default_layer(model)
    return case


@pytest.fixture
def fast(monkeypatch):
    """Small models, no pause between samples, no PyTorch, memory figures made up; timed in this process."""
    for name in machine.SLOW_BLAS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(timing, "make_case", small_case)
    monkeypatch.setattr(timing, "PAUSE_S", 0.0)
    monkeypatch.setattr(timing, "import_torch", lambda: None)
    monkeypatch.setattr(timing, "measure_memory",
                        lambda name, op, side, data=None: {"peak_mib": 100.0, "op_mib": 10.0, "method": "test"})


def test_run_reports_every_operation_with_median_min_max(fast):
    settings = timing.Settings(reps=2, min_sample_s=0.0, memory=False, case_names=("tiny",))
    info, results = timing.run(settings)
    assert list(results) == [f"tiny/{op}" for op in WITHOUT_DATA]
    for key, row in results.items():
        assert row["minicnn_min_s"] <= row["minicnn_s"] <= row["minicnn_max_s"], key
        assert row["reps"] == 2 and row["calls_per_rep"] >= 1
        assert "torch_s" not in row and "ratio" not in row
    assert info["numpy"] == np.__version__ and info["threads"] >= 1
    assert any("PyTorch is not installed" in note for note in info["notes"])


def test_quick_command_prints_the_table_and_writes_json(fast, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench_command.run(argparse.Namespace(json=str(out), quick=True)) == 0
    text = capsys.readouterr().out
    assert text.startswith("minicnn bench, ")
    for expected in ("machine:", "numpy", "BLAS", "threads", "operation", "ratio", "resnet20_cifar10/gradcam",
                     "vgg_cifar10/batch64", "vgg_cifar10/batch256", "vgg_cifar10/backward64", "vgg_cifar10/scorecam",
                     "100 (+10)", "evaluate not timed: give the CIFAR-10 JPEG test set with --data"):
        assert expected in text
    data = json.loads(out.read_text())
    assert set(data) == {f"{m}/{op}" for m in cases.CIFAR_MODELS for op in WITHOUT_DATA} | {"_meta"}
    row = data["resnet20_cifar10/gradcam"]
    assert {"minicnn_s", "minicnn_min_s", "minicnn_max_s", "minicnn_peak_mib", "minicnn_op_mib"} <= set(row)
    assert data["_meta"]["reps"] == 3 and "date" in data["_meta"] and "cpu" in data["_meta"]


def test_evaluate_is_timed_on_the_data_given(fast, capsys):
    args = argparse.Namespace(json=None, quick=True, models=["vgg_cifar10"], reps=1, no_memory=True,
                              keep_env=False, data=SAMPLES)
    assert bench_command.run(args) == 0
    text = capsys.readouterr().out
    assert "vgg_cifar10/evaluate" in text and "evaluate not timed" not in text


def test_a_bad_data_path_is_refused_before_any_timing(fast, tmp_path):
    args = argparse.Namespace(json=None, quick=True, models=None, reps=1, no_memory=True, keep_env=False,
                              data=str(tmp_path / "none"))
    with pytest.raises(MinicnnError):
        bench_command.run(args)


def test_an_unwritable_json_path_is_refused_before_any_timing(fast, tmp_path):
    with pytest.raises(OutputError):
        bench_command.run(argparse.Namespace(json=str(tmp_path / "missing" / "b.json"), quick=True))


def test_a_model_that_cannot_be_loaded_is_skipped_with_a_note(monkeypatch):
    def refuse(name, data=None):
        raise MinicnnError(f"no model {name}")
    monkeypatch.setattr(timing, "make_case", refuse)
    monkeypatch.setattr(timing, "import_torch", lambda: None)
    info, results = timing.run(timing.Settings(case_names=("vgg_cifar10",), memory=False))
    assert results == {}
    assert "vgg_cifar10 skipped: no model vgg_cifar10" in info["notes"]


def test_table_with_pytorch_columns_and_targets():
    info = {"date": "2026-01-01 00:00 UTC", "cpu": "CPU", "cores": 2, "python": "3.11", "numpy": "2.0",
            "blas": "openblas 0.3", "blas_kernel": "Haswell", "threads": 2, "torch": "2.13.0",
            "torch_threads": 2, "reps": 5, "notes": [], "dropped_env": "OPENBLAS_CORETYPE=Haswell",
            "load_before": 0.5, "load_after": 0.75}
    row = {"minicnn_s": 0.22, "minicnn_min_s": 0.2, "minicnn_max_s": 0.3, "torch_s": 0.21, "torch_min_s": 0.2,
           "torch_max_s": 0.25, "ratio": 0.22 / 0.21, "diff": 3e-7, "minicnn_peak_mib": 700.0,
           "minicnn_op_mib": 150.0, "torch_peak_mib": 900.0, "torch_op_mib": 300.0}
    results = {"vgg16/gradcam": {**row, "ratio": 0.98}, "vgg16/guided_backprop": {**row, "ratio": 1.4},
               "resnet20_cifar10/gradcam": {**row, "ratio": 1.5}, "resnet20_cifar10/batch64": row,
               "vgg_cifar10/evaluate": {**row, "ratio": 1.3, "minicnn_peak_mib": 950.0}}
    text = report.table(info, results)
    assert "ran without OPENBLAS_CORETYPE=Haswell" in text
    assert "load average (1 min): 0.5 before, 0.75 after (on 2 cores)" in text
    assert "220 ms (200-300)" in text and "1.05x" in text and "700 (+150)" in text
    assert "met    vgg16/gradcam <= 1.00x PyTorch: 0.98x" in text
    assert "MISSED vgg16/guided_backprop <= 1.10x PyTorch: 1.40x" in text
    assert "met    resnet20_cifar10/gradcam <= 2.00x PyTorch: 1.50x" in text
    assert "met    resnet20_cifar10/batch64 <= 1.20x PyTorch: 1.05x" in text
    assert "MISSED vgg_cifar10/evaluate <= 1.20x PyTorch: 1.30x" in text
    assert "MISSED peak memory <= PyTorch's: 4/5 operations (not: vgg_cifar10/evaluate)" in text


def test_the_vgg16_targets_catch_the_large_image_pass_cut_into_blocks():
    # The ratios measured on a quiet machine with the pass on minicnn's threads, then with BLAS's threads.
    slow = {"vgg16/forward": 1.55, "vgg16/gradcam": 1.41, "vgg16/guided_backprop": 1.57}
    fast = {"vgg16/forward": 1.25, "vgg16/gradcam": 0.94, "vgg16/guided_backprop": 1.08}
    assert [met for _, _, met in report.targets({k: {"ratio": r} for k, r in slow.items()})] == [False] * 3
    assert [met for _, _, met in report.targets({k: {"ratio": r} for k, r in fast.items()})] == [True] * 3


def test_the_slow_blas_variables_are_dropped_from_a_copy_of_the_environment():
    environ = {"PATH": "/bin", "OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "1048576"}
    env, dropped = machine.clean_environment(environ)
    assert env == {"PATH": "/bin"}
    assert dropped == ["OPENBLAS_CORETYPE=Haswell", "OPENBLAS_L2_SIZE=1048576"]
    assert "OPENBLAS_CORETYPE" in environ                      # the caller's environment is untouched


def test_with_slow_blas_variables_the_timing_runs_in_a_child_and_this_process_lives_on(monkeypatch, tmp_path):
    """The bench never replaces or ends its caller: with the variables set it waits for a child process."""
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("OPENBLAS_L2_SIZE", "512")
    monkeypatch.delenv(machine._DROPPED, raising=False)
    pid = os.getpid()
    out = tmp_path / "bench.json"
    args = argparse.Namespace(json=str(out), quick=True, models=["vgg_cifar10"], reps=1, no_memory=True,
                              keep_env=False)
    assert bench_command.run(args) == 0
    assert os.getpid() == pid                                  # still this process, still running
    meta = json.loads(out.read_text())["_meta"]
    assert meta["dropped_env"] == "OPENBLAS_CORETYPE=Haswell, OPENBLAS_L2_SIZE=512"
    assert "kept_env" not in meta and meta["reps"] == 1
    assert {k for k in json.loads(out.read_text()) if k != "_meta"} == {f"vgg_cifar10/{op}" for op in WITHOUT_DATA}
    assert os.environ["OPENBLAS_CORETYPE"] == "Haswell"        # the caller's environment is untouched


def test_keep_env_times_in_this_process_and_says_the_variables_were_kept(fast, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.delenv(machine._DROPPED, raising=False)
    monkeypatch.setattr(bench_command.subprocess, "run", lambda *a, **k: pytest.fail("no child process expected"))
    args = argparse.Namespace(json=None, quick=True, models=None, reps=1, no_memory=True, keep_env=True)
    assert bench_command.run(args) == 0
    assert "note: OPENBLAS_CORETYPE=Haswell set: BLAS may run an older, slower kernel" in capsys.readouterr().out


def test_the_child_gets_the_same_arguments():
    args = argparse.Namespace(json="b.json", quick=True, models=["vgg_cifar10", "vgg16"], reps=2, no_memory=True,
                              keep_env=False, data="cifar.zip")
    assert bench_command.bench_argv(args) == ["--json", "b.json", "--quick", "--models", "vgg_cifar10,vgg16",
                                              "--reps", "2", "--no-memory", "--data", "cifar.zip"]
    assert bench_command.bench_argv(argparse.Namespace(json=None, quick=False)) == []


def test_memory_probe_runs_in_a_fresh_process():
    m = timing.measure_memory("vgg_cifar", "gradcam", "minicnn")
    assert m is not None and 0 < m["op_mib"] <= m["peak_mib"]


@pytest.mark.torch
def test_pytorch_twin_does_the_same_work():
    torch = pytest.importorskip("torch")
    case = small_case("tiny", SAMPLES)
    twin = twins.torch_twin(case.model, torch)
    mine, theirs = cases.minicnn_operations(case), twins.torch_operations(case, twin, torch)
    assert set(mine) == set(theirs) == set(cases.OPERATIONS)
    for op in cases.OPERATIONS:
        if op == "evaluate":                      # images right: a near-tie of two logits may flip one
            assert abs(int(mine[op]()[0]) - int(theirs[op]()[0])) <= 1
        else:
            assert timing.relative_difference(mine[op](), theirs[op]()) < 1e-4, op
    resnet = zoo.resnet20()
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        logits = twins.torch_twin(resnet, torch)(torch.from_numpy(x))
    assert timing.relative_difference(resnet.forward(x), logits) < 1e-5


@pytest.mark.torch
def test_pytorch_twin_of_a_mobilenet_v2_does_the_same_work():
    torch = pytest.importorskip("torch")
    model = zoo.mobilenet_v2(num_classes=5, settings=((1, 4, 1, 1), (2, 6, 2, 2)), first_channels=4,
                             last_channels=8)
    rng = np.random.default_rng(0)
    case = cases.Case("tiny_mobilenet", model, rng.standard_normal((1, 3, 32, 32), np.float32))
    case.target, case.layer = int(np.argmax(model.forward(case.x)[0])), default_layer(model)
    twin = twins.torch_twin(model, torch)
    mine, theirs = cases.minicnn_operations(case), twins.torch_operations(case, twin, torch)
    for op in ("forward", "gradcam", "guided_backprop", "guided_gradcam"):
        assert timing.relative_difference(mine[op](), theirs[op]()) < 1e-4, op
