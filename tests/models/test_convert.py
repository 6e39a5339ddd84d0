"""The converter: key mapping and BatchNorm folding in NumPy (no torch), then real checkpoints (torch)."""

import sys
from pathlib import Path

import numpy as np
import pytest

import minicnn
from minicnn.commands import cli
from minicnn.commands import convert as convert_command
from minicnn.errors import InputError, MissingDependencyError, UnknownNameError, WeightsError
from minicnn.models import shipped, zoo
from minicnn.models.convert import pytorch as convert

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SMALL_CFG = [8, "M", 16, "M", 16, 16, "M", 16, 16, "M", 16, 16, "M"]


def rel_err(a, b) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def random_state(model, seed=0) -> dict:
    """Random parameters, with BatchNorm statistics far from the identity."""
    rng = np.random.default_rng(seed)
    state = {}
    for k, a in model.state_dict().items():
        v = rng.standard_normal(a.shape).astype(np.float32) * 0.2
        if k.endswith("running_var") or (k.endswith(".weight") and a.ndim == 1):
            v = rng.uniform(0.5, 1.5, a.shape).astype(np.float32)
        state[k] = v
    return state


def torch_style(state, prefix="module."):
    """What a DataParallel checkpoint holds: prefixed keys and BN batch counters."""
    out = {prefix + k: v for k, v in state.items()}
    for k in state:
        if k.endswith("running_mean"):
            out[prefix + k.replace("running_mean", "num_batches_tracked")] = np.array(100, np.int64)
    return out


@pytest.fixture
def x32():
    return np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)


# ---------------------------------------------------------------- mapping, NumPy only

def test_resnet20_state_dict_with_prefix_and_counters(x32):
    ref = zoo.resnet20()
    state = random_state(ref)
    ref.load_state_dict(state)
    model = convert.convert_state_dict({"state_dict": torch_style(state), "best_prec1": 91.0}, "resnet20")
    assert np.array_equal(model.forward(x32), ref.forward(x32))
    assert model.classes == zoo.CIFAR10_CLASSES and model.meta["arch"] == "resnet20"


@pytest.mark.parametrize("arch,build", [
    ("vgg_cifar", lambda **kw: zoo.vgg_cifar(**kw)),
    ("vgg11_bn", lambda **kw: zoo.vgg(SMALL_CFG, batch_norm=True, hidden=(32, 32), num_classes=10, name="vgg11_bn",
                                      **kw)),
])
def test_folding_batchnorm_keeps_the_function(arch, build, x32):
    ref = build()
    state = random_state(ref, seed=3)
    ref.load_state_dict(state)
    x = x32 if arch == "vgg_cifar" else np.random.default_rng(2).standard_normal((1, 3, 64, 64)).astype(np.float32)
    kept = convert.convert_state_dict(torch_style(state), arch)
    folded = convert.convert_state_dict(torch_style(state), arch, fold_bn=True)
    assert not any(type(m).__name__ == "BatchNorm2d" for _, m in folded.layers())
    assert rel_err(kept.forward(x), ref.forward(x)) == 0
    assert rel_err(folded.forward(x), ref.forward(x)) < 1e-5
    # PyTorch's indices survive folding: features.2 is still the first ReLU
    assert type(folded["features.2"]).__name__ == "ReLU" and "features.1" not in folded
    assert folded.meta["bn_folded"] is True


def test_vgg_widths_are_read_from_the_checkpoint():
    ref = zoo.vgg(SMALL_CFG, hidden=(32, 24), num_classes=7, name="vgg11")
    model = convert.convert_state_dict(random_state(ref), "vgg11")
    assert model["features.3"].out_channels == 16 and model["classifier.3"].out_features == 24
    assert len(model.classes) == 7 and model.input_size == (3, 224, 224)
    assert model.meta["preprocessing"]["resize"] == "shorter_then_center_crop"


def test_imagenet_class_names_for_1000_classes():
    ref = zoo.vgg(SMALL_CFG, hidden=(8, 8), num_classes=1000, name="vgg11")
    model = convert.convert_state_dict(random_state(ref), "vgg11")
    assert model.classes[0] == "tench" and model.classes[281] == "tabby" and len(model.classes) == 1000


def test_unsupported_architecture_lists_the_supported_ones():
    with pytest.raises(UnknownNameError) as e:
        convert.convert_state_dict({}, "resnet50")
    msg = str(e.value)
    assert "resnet50" in msg and "resnet20" in msg and "vgg16" in msg and "\n" not in msg


def test_wrong_checkpoint_names_the_first_bad_key():
    resnet_state = random_state(zoo.resnet20())
    with pytest.raises(WeightsError) as e:
        convert.convert_state_dict(resnet_state, "vgg_cifar")
    assert "'conv1.weight'" in str(e.value) and "supported architectures" in str(e.value)
    state = dict(resnet_state)
    del state["layer2.0.bn1.running_var"]
    with pytest.raises(WeightsError, match="has no 'layer2.0.bn1.running_var'"):
        convert.convert_state_dict(state, "resnet20")
    state = {**resnet_state, "layer4.0.conv1.weight": np.zeros((3, 3, 3, 3), np.float32)}
    with pytest.raises(WeightsError, match="'layer4.0.conv1.weight' has no place in resnet20"):
        convert.convert_state_dict(state, "resnet20")


def test_shape_error_names_layer_and_shapes():
    state = random_state(zoo.resnet20())
    state["layer3.1.conv1.weight"] = np.zeros((64, 32, 3, 3), np.float32)
    with pytest.raises(WeightsError) as e:
        convert.convert_state_dict(state, "resnet20")
    assert "'layer3.1.conv1'" in str(e.value) and "(64, 32, 3, 3)" in str(e.value) and "(64, 64, 3, 3)" in str(e.value)


def test_batchnorm_mismatch_suggests_the_right_arch():
    bn_state = random_state(zoo.vgg(SMALL_CFG, batch_norm=True, hidden=(8, 8), num_classes=10))
    with pytest.raises(WeightsError, match="use --arch vgg11_bn"):
        convert.convert_state_dict(bn_state, "vgg11")
    plain = random_state(zoo.vgg(SMALL_CFG, hidden=(8, 8), num_classes=10))
    with pytest.raises(WeightsError, match="use --arch vgg11$"):
        convert.convert_state_dict(plain, "vgg11_bn")
    with pytest.raises(InputError, match="no BatchNorm layers to fold"):
        convert.convert_state_dict(plain, "vgg11", fold_bn=True)
    with pytest.raises(InputError, match="resnet20 keeps its BatchNorm"):
        convert.convert_state_dict(random_state(zoo.resnet20()), "resnet20", fold_bn=True)


def test_meta_is_merged_and_checked():
    state = random_state(zoo.resnet20())
    model = convert.convert_state_dict(state, "resnet20", meta={"name": "r", "provenance": {"who": "me"},
                                                                 "licence": "MIT"})
    assert model.name == "r" and model.meta["provenance"] == {"who": "me"} and model.meta["licence"] == "MIT"
    with pytest.raises(InputError, match="3 class names but .* 10 outputs"):
        convert.convert_state_dict(state, "resnet20", meta={"classes": ["a", "b", "c"]})


def test_meta_argument_file_or_text(tmp_path):
    assert convert_command.read_meta_argument('{"licence": "MIT"}') == {"licence": "MIT"}
    (tmp_path / "m.json").write_text('{"name": "x"}')
    assert convert_command.read_meta_argument(str(tmp_path / "m.json")) == {"name": "x"}
    (tmp_path / "list.json").write_text("[1]")
    for bad, words in [("{not json", "not valid JSON"), (str(tmp_path / "missing.json"), "cannot read"),
                       (str(tmp_path / "list.json"), "JSON object")]:
        with pytest.raises(InputError, match=words):
            convert_command.read_meta_argument(bad)


def test_missing_torch_is_a_clear_error(tmp_path, monkeypatch, capsys):
    ckpt = tmp_path / "c.pth"
    ckpt.write_bytes(b"anything")
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'minicnn\[torch\]'"):
        convert.read_checkpoint(ckpt)
    assert cli.main(["convert", str(ckpt), "--arch", "resnet20", "--out", str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "minicnn: error: converting needs PyTorch: pip install 'minicnn[torch]'"
    assert not (tmp_path / "o.npz").exists()


def test_cli_refuses_to_overwrite_before_converting(tmp_path, capsys):
    out = tmp_path / "o.npz"
    out.write_bytes(b"keep me")
    assert cli.main(["convert", str(tmp_path / "absent.pth"), "--arch", "resnet20", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == b"keep me"
    assert cli.main(["convert", "x.pth", "--arch", "resnet99", "--out", str(tmp_path / "p.npz")]) == 2
    assert "unknown architecture 'resnet99'" in capsys.readouterr().err


# ---------------------------------------------------------------- real checkpoints (needs torch)

def fixture_logits(name, case="random64"):
    with np.load(FIXTURES / f"{name}_torch.npz") as z:
        return z[f"{case}.x"], z[f"{case}.logits"]


@pytest.mark.torch
@pytest.mark.parametrize("ckpt,arch,fold,fixture", [
    ("vgg11_small.pth", "vgg11", False, "vgg11_small"),             # zip format, bare state_dict
    ("vgg11_bn_small.pth", "vgg11_bn", False, "vgg11_bn_small"),    # legacy format, wrapped, module. keys
    ("vgg11_bn_small.pth", "vgg11_bn", True, "vgg11_bn_small"),
])
def test_small_vgg_checkpoint_converts_and_matches_pytorch(tmp_path, capsys, ckpt, arch, fold, fixture):
    pytest.importorskip("torch")
    out = tmp_path / "small.npz"
    argv = ["convert", str(FIXTURES / ckpt), "--arch", arch, "--out", str(out), "--meta", '{"licence": "MIT"}']
    assert cli.main(argv + (["--fold-bn"] if fold else [])) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    model = minicnn.load(out)
    x, logits = fixture_logits(fixture)
    assert rel_err(model.forward(x), logits) < 1e-4
    assert model.name == "small" and model.meta["licence"] == "MIT"
    assert model.meta["provenance"]["source_sha256"] == shipped.sha256_file(FIXTURES / ckpt)
    assert any(type(m).__name__ == "BatchNorm2d" for _, m in model.layers()) == (arch.endswith("_bn") and not fold)
    assert cli.main(argv) == 2  # exists now
    assert cli.main(argv + ["--force"]) == 0


@pytest.mark.torch
def test_unreadable_checkpoints(tmp_path):
    torch = pytest.importorskip("torch")
    good = (FIXTURES / "vgg11_small.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(good[: len(good) // 2])
    (tmp_path / "junk.pth").write_bytes(b"\x00" * 100)
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pth")  # a whole pickled module, not a state_dict
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    for name, words in [("cut.pth", "cannot read"), ("junk.pth", "cannot read"),
                        ("module.pth", "save model.state_dict()"), ("list.pth", "not a state_dict"),
                        ("absent.pth", "not found")]:
        with pytest.raises(WeightsError) as e:
            convert.convert_checkpoint(tmp_path / name, "vgg11")
        assert words in str(e.value) and "\n" not in str(e.value), name
