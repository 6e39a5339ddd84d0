"""The weights format: round trip, manifest checksums, and every kind of bad file refused in one line."""

import json
import os
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import minicnn
from minicnn.commands import cli
from minicnn.errors import ChecksumError, OutputError, UnknownNameError, WeightsError
from minicnn.models import shipped, weights, zoo

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "weights"


def one_line(e) -> str:
    text = str(e.value if hasattr(e, "value") else e)
    assert "\n" not in text and text
    return text


@pytest.fixture
def x32():
    return np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch):
    """A private copy of the shipped weights folder, used as MINICNN_WEIGHTS_DIR."""
    folder = tmp_path / "weights"
    folder.mkdir()
    shutil.copy(SHIPPED / "manifest.json", folder)
    shutil.copy(SHIPPED / "resnet20_cifar10.npz", folder)
    monkeypatch.setenv("MINICNN_WEIGHTS_DIR", str(folder))
    return folder


def write_npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def meta_array(model):
    return weights.encode_meta({"format": weights.FORMAT, "version": weights.VERSION, **model.meta,
                                "spec": model.spec()})


# ---------------------------------------------------------------- round trip

@pytest.mark.parametrize("build", [lambda: zoo.resnet20(seed=3), lambda: zoo.vgg_cifar(fold_bn=True, seed=4)])
def test_round_trip_gives_identical_logits(tmp_path, x32, build):
    model = build()
    model.meta["provenance"] = {"note": "ünïcode survives"}
    path = weights.save(model, tmp_path / "m.npz")
    again = minicnn.load(path)
    assert np.array_equal(model.forward(x32), again.forward(x32))
    assert again.spec() == model.spec()
    assert again.meta == model.meta
    assert again.layer_names == model.layer_names


def test_format_is_plain_npz_with_json_meta(tmp_path):
    path = weights.save(zoo.resnet20(), tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(z["__meta__"].tobytes().decode("utf-8"))
        assert z["__meta__"].dtype == np.uint8
        assert z["layer1.0.conv1.weight"].dtype == np.float32
        assert set(z.files) == {"__meta__", *zoo.resnet20().state_dict()}
    assert meta["format"] == "minicnn-weights" and meta["version"] == 1
    assert meta["arch"] == "resnet20" and meta["spec"]["type"] == "Sequential"
    assert meta["input_size"] == [3, 32, 32] and len(meta["classes"]) == 10


def test_meta_as_unicode_scalar_is_read(tmp_path, x32):
    model = zoo.resnet20(seed=1)
    text = meta_array(model).tobytes().decode("utf-8")
    path = write_npz(tmp_path / "u.npz", __meta__=np.array(text), **model.state_dict())
    assert np.array_equal(weights.read_weights(path).forward(x32), model.forward(x32))


# ---------------------------------------------------------------- writing

def test_save_refuses_to_overwrite_without_force(tmp_path):
    path = weights.save(zoo.resnet20(seed=0), tmp_path / "m.npz")
    before = path.read_bytes()
    with pytest.raises(OutputError) as e:
        weights.save(zoo.resnet20(seed=1), path)
    assert "already exists" in one_line(e) and "force" in one_line(e)
    assert path.read_bytes() == before
    weights.save(zoo.resnet20(seed=1), path, force=True)
    assert path.read_bytes() != before


def test_save_into_missing_folder(tmp_path):
    with pytest.raises(OutputError) as e:
        weights.save(zoo.resnet20(), tmp_path / "nope" / "m.npz")
    assert "does not exist" in one_line(e)


def test_save_into_unwritable_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    with pytest.raises(OutputError) as e:
        weights.save(zoo.resnet20(), tmp_path / "m.npz")
    assert "not writable" in one_line(e)
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_write_keeps_previous_file(tmp_path, monkeypatch):
    path = weights.save(zoo.resnet20(seed=0), tmp_path / "m.npz")
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OutputError) as e:
        weights.save(zoo.resnet20(seed=1), path, force=True)
    assert "No space left" in one_line(e)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]  # no temporary file left


# ---------------------------------------------------------------- shipped models and the manifest

def test_load_shipped_by_name_fast():
    start = time.perf_counter()
    model = minicnn.load("resnet20_cifar10")
    assert time.perf_counter() - start < 0.5
    assert model.name == "resnet20_cifar10" and model.meta["arch"] == "resnet20"
    assert model.classes[3] == "cat" and model.input_size == (3, 32, 32)
    assert model.meta["preprocessing"]["resize"] == "shorter"           # fully convolutional: aspect kept
    assert model.meta["licence"]["name"] == "BSD-2-Clause"
    assert model.meta["provenance"]["source_sha256"].startswith("12fca82f")
    assert model.num_parameters() == 269_722


def test_manifest_matches_the_shipped_files():
    manifest = shipped.read_manifest(SHIPPED)
    assert "resnet20_cifar10" in manifest["models"]
    for name, entry in manifest["models"].items():
        path = SHIPPED / entry["file"]
        assert path.stem == name
        assert shipped.sha256_file(path) == entry["sha256"]
        assert path.stat().st_size == entry["size"]
        meta = weights.read_meta(path)
        assert entry["input_size"] == meta["input_size"] and entry["num_classes"] == len(meta["classes"])
        assert entry["accuracy"] == meta.get("accuracy")


def test_resnet20_licence_notice_ships():
    text = (SHIPPED / "LICENSE-resnet20-cifar10.txt").read_text()
    assert "Copyright (c) 2018, Yerlan Idelbayev" in text
    assert weights.read_meta(SHIPPED / "resnet20_cifar10.npz")["licence"]["text"].strip() == text.strip()


def test_resnet20_accepts_32x64_input():
    model = minicnn.load("resnet20_cifar10")
    logits = model.forward(np.zeros((1, 3, 32, 64), np.float32))
    assert logits.shape == (1, 10) and model.activations["layer3"].shape == (1, 64, 8, 16)


def test_tampered_byte_is_a_checksum_error(shipped_copy):
    path = shipped_copy / "resnet20_cifar10.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError) as e:
        minicnn.load("resnet20_cifar10")
    msg = one_line(e)
    expected = shipped.read_manifest(shipped_copy)["models"]["resnet20_cifar10"]["sha256"]
    assert str(path) in msg and expected in msg and shipped.sha256_file(path) in msg
    with pytest.raises(ChecksumError):  # also when the shipped file is named by its path
        minicnn.load(path)


def test_shipped_file_missing(shipped_copy):
    (shipped_copy / "resnet20_cifar10.npz").unlink()
    with pytest.raises(WeightsError) as e:
        minicnn.load("resnet20_cifar10")
    assert "missing" in one_line(e)


def test_unknown_model_name_lists_the_shipped_ones():
    with pytest.raises(UnknownNameError) as e:
        minicnn.load("resnet20_cifar")
    msg = one_line(e)
    assert "did you mean 'resnet20_cifar10'" in msg and "resnet20_cifar10" in msg


def test_missing_path():
    with pytest.raises(WeightsError) as e:
        minicnn.load("no/such/file.npz")
    assert "not found" in one_line(e)


def test_register_updates_the_manifest(tmp_path):
    path = weights.save(zoo.resnet20(), tmp_path / "mine.npz")
    entry = weights.register(path, tmp_path)
    manifest = shipped.read_manifest(tmp_path)
    assert manifest["models"]["mine"] == entry and entry["sha256"] == shipped.sha256_file(path)
    with pytest.raises(WeightsError):
        weights.register(path, tmp_path / "elsewhere")


# ---------------------------------------------------------------- damaged and hostile files

@pytest.fixture(scope="module")
def good_bytes(tmp_path_factory):
    path = weights.save(zoo.resnet20(seed=2), tmp_path_factory.mktemp("w") / "good.npz")
    return path.read_bytes()


@pytest.mark.parametrize("keep", [0, 1, 30, 1000, 0.5, -200, -1])
def test_truncated_file(tmp_path, good_bytes, keep):
    n = int(len(good_bytes) * keep) if isinstance(keep, float) else keep
    path = tmp_path / "t.npz"
    path.write_bytes(good_bytes[:n])
    with pytest.raises(WeightsError) as e:
        weights.read_weights(path)
    one_line(e)


def test_random_bytes_and_other_files(tmp_path):
    rng = np.random.default_rng(5)
    for i, data in enumerate([rng.bytes(3000), b"PK\x05\x06" + bytes(18), b"\x93NUMPY garbage", b"{}"]):
        path = tmp_path / f"r{i}.npz"
        path.write_bytes(data)
        with pytest.raises(WeightsError) as e:
            weights.read_weights(path)
        one_line(e)
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(WeightsError, match="single array"):
        weights.read_weights(tmp_path / "single.npy")


class Payload:
    """Unpickling this would create a file (open(path, "w")): the loaders must never do it."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def object_array(marker):
    return np.array([Payload(marker), 1], dtype=object)


@pytest.mark.parametrize("where", ["array", "meta", "pickle_file", "zip_member"])
def test_pickled_objects_are_refused_never_run(tmp_path, where):
    marker = tmp_path / "pwned"
    model = zoo.resnet20()
    path = tmp_path / "evil.npz"
    if where == "array":
        arrays = {**model.state_dict(), "conv1.weight": object_array(marker)}
        write_npz(path, __meta__=meta_array(model), **arrays)
    elif where == "meta":
        write_npz(path, __meta__=object_array(marker), **model.state_dict())
    elif where == "pickle_file":
        import pickle
        path.write_bytes(pickle.dumps(Payload(marker)))
    else:  # a hand-made zip whose member is a pickle, not an .npy
        import pickle
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("__meta__.npy", pickle.dumps(Payload(marker)))
    with pytest.raises(WeightsError) as e:
        weights.read_weights(path)
    one_line(e)
    assert not marker.exists()
    if where in ("array", "meta", "pickle_file"):
        assert "pickle" in str(e.value)


def test_missing_meta(tmp_path):
    path = write_npz(tmp_path / "m.npz", **zoo.resnet20().state_dict())
    with pytest.raises(WeightsError) as e:
        weights.read_weights(path)
    assert "__meta__" in one_line(e) and "minicnn convert" in str(e.value)


@pytest.mark.parametrize("meta", [b"not json", json.dumps({"format": "other"}).encode(),
                                  json.dumps({"format": "minicnn-weights", "version": 99}).encode(),
                                  json.dumps({"format": "minicnn-weights", "version": 1}).encode(),
                                  json.dumps({"format": "minicnn-weights", "version": 1,
                                              "spec": {"type": "Lambda"}}).encode(),
                                  b"[" * 100000])
def test_bad_meta(tmp_path, meta):
    path = write_npz(tmp_path / "m.npz", __meta__=np.frombuffer(meta, np.uint8))
    with pytest.raises(WeightsError) as e:
        weights.read_weights(path)
    one_line(e)


def test_shape_mismatch_names_the_layer_and_both_shapes(tmp_path):
    model = zoo.resnet20()
    arrays = model.state_dict()
    arrays["layer2.1.conv2.weight"] = np.zeros((32, 16, 3, 3), np.float32)
    path = write_npz(tmp_path / "m.npz", __meta__=meta_array(model), **arrays)
    with pytest.raises(WeightsError) as e:
        weights.read_weights(path)
    msg = one_line(e)
    assert "'layer2.1.conv2'" in msg and "(32, 16, 3, 3)" in msg and "(32, 32, 3, 3)" in msg


def test_missing_and_unexpected_arrays(tmp_path):
    model = zoo.resnet20()
    arrays = model.state_dict()
    del arrays["linear.bias"]
    path = write_npz(tmp_path / "a.npz", __meta__=meta_array(model), **arrays)
    with pytest.raises(WeightsError, match="missing array 'linear.bias'"):
        weights.read_weights(path)
    path = write_npz(tmp_path / "b.npz", __meta__=meta_array(model), **model.state_dict(),
                     **{"layer4.0.conv1.weight": np.zeros(3, np.float32)})
    with pytest.raises(WeightsError, match="layer4.0.conv1.weight"):
        weights.read_weights(path)


def test_integer_array_refused(tmp_path):
    model = zoo.resnet20()
    arrays = {**model.state_dict(), "linear.bias": np.zeros(10, np.int64)}
    path = write_npz(tmp_path / "m.npz", __meta__=meta_array(model), **arrays)
    with pytest.raises(WeightsError, match="floating point"):
        weights.read_weights(path)


# ---------------------------------------------------------------- the command line

def test_cli_models(capsys):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    assert "resnet20_cifar10" in out and "81.03%" in out and "269,722" in out and "3x32x32" in out


def test_cli_layers(capsys):
    assert cli.main(["layers", "--model", "resnet20_cifar10"]) == 0
    out = capsys.readouterr().out
    for name in ("conv1", "layer3.2.conv2", "layer3", "linear", "64x8x8", "269,722"):
        assert name in out


def test_cli_unknown_model_is_one_line_exit_2(capsys):
    assert cli.main(["layers", "--model", "resnet21_cifar10"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("minicnn: error: unknown model") and "resnet20_cifar10" in err


def test_weights_dir_finds_a_regular_install_under_the_prefix(tmp_path, monkeypatch):
    import sys
    monkeypatch.delenv("MINICNN_WEIGHTS_DIR", raising=False)
    installed = tmp_path / "prefix" / "share" / "minicnn" / "weights"
    installed.mkdir(parents=True)
    (installed / "manifest.json").write_text('{"models": {}}')
    monkeypatch.setattr(shipped, "PACKAGE_DIR", tmp_path / "site-packages" / "minicnn")
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "prefix"))
    assert shipped.weights_dir() == installed
