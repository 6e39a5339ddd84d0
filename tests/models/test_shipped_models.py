"""What the shipped models promise: their files in the checkout, their layer kinds, a README naming their checksums."""

import json
from pathlib import Path

import minicnn
from minicnn.commands import cli
from minicnn.layers import Sequential
from minicnn.models import shipped

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


def test_the_checkout_ships_every_model_and_its_files():
    # Tests that use the shipped models fail (they do not skip) when a file is missing; this says why.
    assert shipped.weights_dir().resolve() == WEIGHTS.resolve()
    manifest = json.loads((WEIGHTS / "manifest.json").read_text())
    assert sorted(manifest["models"]) == ["mobilenet_v2", "resnet20_cifar10", "vgg_cifar10"] == shipped.shipped_models()
    for _name, entry in manifest["models"].items():
        path = WEIGHTS / entry["file"]
        assert path.is_file(), f"{path} is missing from the checkout"
        assert shipped.sha256_file(path) == entry["sha256"], f"{path} differs from the manifest"


def test_vgg_cifar10_is_only_conv_relu_pool_flatten_dense_dropout(capsys):
    model = minicnn.load("vgg_cifar10")
    kinds = {type(m).__name__ for _, m in model.layers()}
    assert kinds == {"Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear", "Dropout"}
    assert all(isinstance(m, Sequential) for name, m in model.root.named_modules()
               if name in ("features", "classifier"))
    assert cli.main(["layers", "--model", "vgg_cifar10"]) == 0
    table = capsys.readouterr().out
    assert "BatchNorm" not in table and "features.19" in table and "814,122 parameters" in table


def test_weights_readme_names_every_shipped_file_and_its_sha256():
    manifest = json.loads((WEIGHTS / "manifest.json").read_text())
    readme = (WEIGHTS / "README.md").read_text()
    for name, entry in manifest["models"].items():
        assert f"## {name}" in readme
        assert entry["sha256"] in readme, f"weights/README.md does not give {name}'s sha256"
        if entry["accuracy"]["top1"] is None:          # not measurable offline (ImageNet): the README says so
            assert "not measured" in entry["accuracy"]["note"]
        else:
            assert f"{entry['accuracy']['top1']:.2f}%" in readme
