"""``minicnn bench --peers``: its table and JSON, the missing-library lines, and that each side does the same work.

Three kinds of test, by what they need:
- none (the core's test run): the table and JSON writer on made-up rows, the one-line
  message for a missing library, the stand-ins, the command's ``--out`` and overwrite rule;
- torch (``@pytest.mark.torch``, CI's torch step, which has torch and no peer library and
  must run every one of its tests): the peers' twin computes minicnn's logits, and a run
  with the peer libraries absent times minicnn alone and says, per library, what to install;
- a peer library (captum, pytorch-grad-cam, zennit): its public call gives minicnn's map.
  These are not marked ``torch``: CI's torch step installs no peer library and skips
  nothing, so they run where the libraries are installed (the reference environment) and
  skip elsewhere, saying which library they need.
"""

import argparse
import importlib.util
import json
import sys

import numpy as np
import pytest

from minicnn.bench import peer_libraries, peer_report, peers
from minicnn.commands import bench as bench_command
from minicnn.errors import InputError, OutputError
from minicnn.explain import default_layer
from minicnn.explain.registry import METHODS
from minicnn.models import zoo


def made_up_results():
    """Rows of every kind: peers timed, a peer library missing, no peer, a method skipped, memory figures."""
    return {
        "tiny/gradcam": {"minicnn_s": 0.004, "minicnn_min_s": 0.003, "minicnn_max_s": 0.005, "reps": 3,
                         "calls_per_rep": 20, "minicnn_peak_mib": 120.0, "minicnn_op_mib": 2.0,
                         "peers": {"captum:LayerGradCam": {"s": 0.008, "min_s": 0.007, "max_s": 0.011, "ratio": 0.5,
                                                           "peak_mib": 300.0, "op_mib": 5.0}},
                         "absent": ["pytorch-grad-cam:GradCAM"]},
        "tiny/counterfactual": {"minicnn_s": 0.004, "minicnn_min_s": 0.004, "minicnn_max_s": 0.004, "reps": 3,
                                "calls_per_rep": 20, "peers": {}, "absent": [], "no_peer": True},
        "tiny/cam": {"skipped": "cam needs global average pooling before the last dense layer"},
    }


def made_up_info():
    return {"date": "2026-12-06 05:00 UTC", "cpu": "a CPU", "cores": 2, "python": "3.11", "numpy": "2.4",
            "threads": 2, "torch": "2.13.0", "torch_threads": 2, "load_before": 0.3, "load_after": 0.4,
            "libraries": {"pytorch-grad-cam": None, "captum": "0.9.0", "zennit": "0.5.1"},
            "stand_ins": ["torchvision"], "reps": 3, "image": "cat 0",
            "notes": [peer_libraries.missing_message("pytorch-grad-cam")]}


# ---------------------------------------------------------------- no torch needed

def test_the_table_names_each_peer_the_missing_ones_and_the_methods_without_a_peer():
    text = peer_report.peer_table(made_up_info(), made_up_results())
    lines = text.splitlines()
    row = next(line for line in lines if line.startswith("tiny/gradcam"))
    assert "captum:LayerGradCam" in row and "0.50x" in row and "4.0 ms (3.0-5.0)" in row and "8.0 ms (7.0-11.0)" in row
    assert "120 (+2)" in row and "300 (+5)" in row
    absent = lines[lines.index(row) + 1]
    assert "pytorch-grad-cam:GradCAM" in absent and "unavailable" in absent and absent.startswith(" ")
    assert any(line.startswith("tiny/counterfactual") and "no peer" in line for line in lines)
    assert "note: tiny/cam not timed: cam needs global average pooling" in text
    assert "note: pytorch-grad-cam is not installed" in text and "pip install grad-cam==1.5.7" in text
    assert "load average (1 min): 0.3 before, 0.4 after" in text
    assert "stand-ins for absent packages: torchvision" in text
    assert "pytorch-grad-cam not installed, captum 0.9.0, zennit 0.5.1" in text
    header = lines[lines.index(next(line for line in lines if line.startswith("model/method")))]
    assert all(len(line) <= len(header) + 2 for line in lines if line.startswith("tiny/"))


def test_the_json_keeps_every_row_and_the_meta():
    data = json.loads(json.dumps(peer_report.peer_json(made_up_info(), made_up_results())))
    assert data["tiny/gradcam"]["peers"]["captum:LayerGradCam"]["ratio"] == 0.5
    assert data["tiny/counterfactual"]["no_peer"] is True
    assert data["_meta"]["libraries"]["pytorch-grad-cam"] is None


@pytest.mark.parametrize("library, install", [("captum", "captum==0.9.0"), ("pytorch-grad-cam", "grad-cam==1.5.7"),
                                              ("zennit", "zennit==0.5.1")])
def test_a_missing_library_is_one_line_that_says_what_to_install(library, install):
    line = peer_libraries.missing_message(library)
    assert "\n" not in line and line.startswith(f"{library} is not installed") and f"pip install {install}" in line


def test_an_absent_library_is_a_note_not_an_error(monkeypatch):
    monkeypatch.setitem(peer_libraries.LIBRARIES, "absentlib", ("minicnn_no_such_module_xyz", "absentlib==1.0"))
    modules, notes = peer_libraries.available_libraries()
    assert "absentlib" not in modules
    assert "absentlib is not installed: its methods are timed without it (pip install absentlib==1.0; " \
           "needs torch==2.13.0)" in notes


def test_stand_ins_are_written_only_for_absent_packages(tmp_path, monkeypatch):
    monkeypatch.setattr(peer_libraries, "STAND_INS", {
        "minicnn_absent_pkg_xyz": {"minicnn_absent_pkg_xyz/__init__.py": "NAME = 'stand-in'\n"},
        "numpy": {"numpy/__init__.py": "raise RuntimeError('never written: numpy is installed')\n"}})
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert peer_libraries.install_stand_ins(tmp_path) == ["minicnn_absent_pkg_xyz"]
    assert sys.path[0] == str(tmp_path) and not (tmp_path / "numpy").exists()
    try:
        import minicnn_absent_pkg_xyz
        assert minicnn_absent_pkg_xyz.NAME == "stand-in"
    finally:
        sys.modules.pop("minicnn_absent_pkg_xyz", None)


def test_every_peer_names_a_registry_method_and_a_known_library():
    assert set(peers.PEERS) <= set(METHODS)
    assert {lib for pairs in peers.PEERS.values() for lib, _ in pairs} == set(peer_libraries.LIBRARIES)
    assert set(METHODS) - set(peers.PEERS) == {"counterfactual", "cam", "rise", "excitation-backprop",
                                               "contrastive-excitation-backprop"}      # "no peer"


def peer_args(**kw):
    return argparse.Namespace(**{"json": None, "force": False, "quick": False, "models": None, "reps": None,
                                 "no_memory": True, "data": None, "keep_env": True, "peers": True, "out": None, **kw})


def test_the_command_writes_text_and_json_and_keeps_the_overwrite_rule(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench_command, "torch_installed", lambda: True)
    monkeypatch.setattr("minicnn.bench.machine.import_torch", lambda: object())
    monkeypatch.setattr(peers, "run", lambda settings: (made_up_info(), made_up_results()))
    out = tmp_path / "peers.txt"
    assert bench_command.run(peer_args(out=str(out))) == 0
    assert "tiny/gradcam" in capsys.readouterr().out
    assert out.read_text().startswith("minicnn bench --peers")
    assert json.loads((tmp_path / "peers.json").read_text())["tiny/gradcam"]["peers"]
    before = out.read_text()
    with pytest.raises(OutputError):
        bench_command.run(peer_args(out=str(out)))                    # exists: refused without --force
    assert out.read_text() == before
    assert bench_command.run(peer_args(out=str(out), force=True)) == 0


def test_the_command_refuses_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_command, "torch_installed", lambda: False)
    monkeypatch.setattr("minicnn.bench.machine.import_torch", lambda: None)
    called = []
    monkeypatch.setattr(peers, "run", lambda settings: called.append(1))
    with pytest.raises(InputError) as e:
        bench_command.run(peer_args())
    assert "pip install torch==2.13.0 captum==0.9.0 grad-cam==1.5.7 zennit==0.5.1" in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="--out goes with --peers"):
        bench_command.run(peer_args(peers=False, out=str(tmp_path / "x.txt")))
    (tmp_path / "taken.json").write_text("{}")
    with pytest.raises(OutputError):                                   # the JSON beside --out exists
        bench_command.run(peer_args(out=str(tmp_path / "taken.txt")))
    assert not called and not (tmp_path / "taken.txt").exists()
    monkeypatch.setattr(bench_command, "torch_installed", lambda: True)    # found, but does not import
    with pytest.raises(InputError, match="needs PyTorch"):
        bench_command.run(peer_args())
    assert bench_command.json_beside("a/b.txt") == "a/b.json" and bench_command.json_beside("b.json") == "b.json.json"


# ---------------------------------------------------------------- torch, no peer library

def tiny_case():
    """A random-weight VGG in miniature on 8x8 images: its twin needs no weights file."""
    model = zoo.vgg([4, "M", 8, "M"], hidden=(16,), pool_size=(2, 2), num_classes=10)
    model.meta.update(preprocessing={"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "resize": "exact",
                                     "size": [8, 8]})
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    target = int(np.argmax(model.forward(x)[0]))
    return peers.PeerCase("tiny", model, x, target, default_layer(model))


@pytest.mark.torch
def test_the_peers_twin_computes_minicnns_logits():
    torch = pytest.importorskip("torch")
    case = tiny_case()
    twin = peers.canonical_twin(case.model, torch)
    assert any(isinstance(m, torch.nn.ReLU) for m in twin.modules())             # captum hooks these
    with torch.no_grad():
        logits = twin(torch.from_numpy(case.x)).numpy()
    np.testing.assert_allclose(logits, case.model.forward(case.x), rtol=1e-4, atol=1e-5 * np.abs(logits).max())
    resnet = zoo.resnet20()
    zoo.init_weights(resnet, seed=0)
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        out = peers.canonical_twin(resnet, torch)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, resnet.forward(x), rtol=1e-3, atol=1e-4 * np.abs(out).max())


@pytest.mark.torch
def test_a_run_without_the_peer_libraries_times_minicnn_and_says_what_to_install(monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setattr(peers, "make_peer_case", lambda name: tiny_case())
    monkeypatch.setattr(peer_libraries, "LIBRARIES", {lib: (f"minicnn_absent_{i}", pip) for i, (lib, (_, pip))
                                                      in enumerate(peer_libraries.LIBRARIES.items())})
    settings = peers.PeerSettings(reps=2, min_sample_s=0.0, memory=False, case_names=("tiny",),
                                  methods=("gradcam", "counterfactual", "lrp-epsilon"))
    info, results = peers.run(settings)
    assert list(results) == ["tiny/gradcam", "tiny/counterfactual", "tiny/lrp-epsilon"]
    assert results["tiny/gradcam"]["absent"] == ["pytorch-grad-cam:GradCAM", "captum:LayerGradCam"]
    assert results["tiny/counterfactual"]["no_peer"] and not results["tiny/counterfactual"]["peers"]
    assert results["tiny/lrp-epsilon"]["absent"] == ["zennit:LayerMapComposite(Epsilon)"]
    assert all(r["minicnn_min_s"] <= r["minicnn_s"] <= r["minicnn_max_s"] for r in results.values())
    assert [note.split(" is not installed")[0] for note in info["notes"]] == list(peer_libraries.LIBRARIES)
    text = peer_report.peer_table(info, results)
    assert "Traceback" not in text and text.count("pip install") == 3


# ---------------------------------------------------------------- with a peer library

def needs(module, install):
    """The peer library's module, or a skip that says what to install (never mentioning the marker's name)."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"needs {install} (a peer library of minicnn bench --peers)")
    return module


def peer_map(case, library, name):
    import torch
    modules, _ = peer_libraries.available_libraries()
    twins = peers.make_twins(case.model, torch, modules)
    out = peers.peer_call(case, library, name, modules, torch, twins)()
    return out.detach().numpy() if hasattr(out, "detach") else np.asarray(out)


def test_captum_peers_compute_minicnns_maps(tmp_path, monkeypatch):
    needs("captum", "captum==0.9.0")
    monkeypatch.setattr(sys, "path", list(sys.path))
    peer_libraries.install_stand_ins(tmp_path)
    case = tiny_case()

    def mine(method):
        return METHODS[method].run(case.model, case.x, case.target, case.layer)

    cam = peer_map(case, "captum", "LayerGradCam")[:, 0]                    # before the ReLU
    np.testing.assert_allclose(np.maximum(cam, 0), mine("gradcam").map, atol=1e-5 * np.abs(cam).max())
    for method, name in (("guided-backprop", "GuidedBackprop"), ("deconvnet", "Deconvolution")):
        theirs = peer_map(case, "captum", name)
        np.testing.assert_allclose(mine(method).map, theirs, atol=1e-5 * np.abs(theirs).max(), err_msg=method)
    grad = peer_map(case, "captum", "Saliency")                             # |dy/dx|; minicnn's map is dy/dx
    np.testing.assert_allclose(np.abs(mine("saliency").map), grad, atol=1e-5 * grad.max())


def test_grad_cam_and_zennit_peers_compute_minicnns_maps(tmp_path, monkeypatch):
    needs("pytorch_grad_cam", "grad-cam==1.5.7")
    needs("zennit", "zennit==0.5.1")
    monkeypatch.setattr(sys, "path", list(sys.path))
    peer_libraries.install_stand_ins(tmp_path)
    case = tiny_case()
    mine = METHODS["gradcam"].run(case.model, case.x, case.target, case.layer).map
    theirs = peer_map(case, "pytorch-grad-cam", "GradCAM")                 # scaled to [0, 1], resized to 8x8
    from minicnn.explain.resize import resize_bilinear
    up = resize_bilinear(mine, case.x.shape[2:])
    up = (up - up.min()) / (up.max() - up.min() + 1e-7)
    np.testing.assert_allclose(theirs, up, atol=1e-3)
    relevance = peer_map(case, "zennit", "EpsilonPlus")
    ours = METHODS["lrp-epsilon-plus"].run(case.model, case.x, case.target).map
    theirs = relevance if ours.ndim == 4 else relevance.sum(axis=1)
    np.testing.assert_allclose(theirs, ours, atol=1e-4 * np.abs(ours).max())
