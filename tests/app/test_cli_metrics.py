"""`minicnn sanity` and `minicnn scorecard` from the command line: tables, JSON, figures, errors."""

import json

import pytest
from metrics.test_metrics_randomisation import similarities_by_hand
from metrics.test_metrics_scorecard import softmax_score
from test_explain_helpers import shipped

from minicnn.commands.cli import main
from minicnn.explain import registry
from minicnn.metrics.deletion import auc, deletion_curve
from minicnn.metrics.intervals import mean_ci95
from minicnn.metrics.maps import pixel_map
from minicnn.metrics.randomisation import randomised
from minicnn.metrics.runs import model_inputs
from minicnn.metrics.scorecard import METRICS


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_sanity_prints_tables_and_writes_the_json_and_both_figures(tmp_path, capsys):
    model = shipped("resnet20_cifar10")
    js, fig = tmp_path / "s.json", tmp_path / "s.png"
    code, out, err = run(capsys, "sanity", "--model", "resnet20_cifar10", "--images", "2", "--methods",
                         "gradcam,cam,guided-backprop", "--json", str(js), "--out", str(fig))
    assert code == 0, err
    assert "**spearman_abs**" in out and "| Guided Backprop | 1.00 |" in out and " 20 conv1+bn1" in out
    assert max(map(len, out.splitlines())) <= 120                 # 21 steps: numbered, in blocks that fit
    data = json.loads(js.read_text())
    assert list(data) == ["model", "mode", "images", "steps", "methods"]
    assert data["model"] == "resnet20_cifar10" and data["mode"] == "cascading" and data["images"] == 2
    assert len(data["steps"]) == 21 and data["steps"][:2] == ["original", "linear"]
    assert list(data["methods"]) == ["gradcam", "cam", "guided_backprop"]
    assert all(len(v) == 21 for m in data["methods"].values() for v in m.values())
    # step 1 (the linear layer randomised) recomputed; the printed rows are the JSON's means
    x, _ = model_inputs(model, 2)
    targets = model.forward(x).argmax(axis=1)
    twin = randomised(model, ("linear",), 0)
    for key in ("gradcam", "guided_backprop"):
        by_hand = similarities_by_hand(model, twin, key, x, targets)
        for s in ("spearman_abs", "spearman", "ssim"):
            assert data["methods"][key][s][1] == pytest.approx(float(by_hand[s].mean()), abs=1e-6), (key, s)
    section = out.split("**spearman**")[1].split("**ssim**")[0]
    printed = [v.strip() for line in section.splitlines() if line.startswith("| Guided Backprop |")
               for v in line.strip(" |").split("|")[1:]]              # the row, gathered from every block
    means = data["methods"]["guided_backprop"]["spearman"]
    assert printed == [f"{v:.2f}" for v in means]
    assert fig.stat().st_size > 10_000 and (tmp_path / "s_curves.png").stat().st_size > 10_000


def test_scorecard_prints_the_table_and_writes_the_json_and_figures(tmp_path, capsys):
    model = shipped("resnet20_cifar10")
    js, folder = tmp_path / "card.json", tmp_path / "figs"
    code, out, err = run(capsys, "scorecard", "--model", "resnet20_cifar10", "--images", "2", "--methods",
                         "gradcam,saliency", "--json", str(js), "--out-dir", str(folder))
    assert code == 0, err
    assert out.startswith("| method | deletion AUC ↓ | insertion AUC ↑ | ROAD MoRF ↓ | ROAD LeRF ↑ | occlusion ρ ↑ |")
    assert "| baseline: edges |" in out and "| Grad-CAM | " in out
    assert "- [?]: no 95% interval: a mean of one value" in out and "minicnn: note: no 95% interval" in err
    data = json.loads(js.read_text())
    assert list(data) == ["model", "images", "methods", "baselines"] and data["images"] == 2
    assert list(data["methods"]) == ["gradcam", "saliency"] and list(data["baselines"]) == ["random", "centre", "edges"]
    for entry in data["methods"].values():
        assert list(entry) == list(METRICS)
        for metric, value in entry.items():
            assert set(value) == {"mean", "ci95"}
            if metric in ("passes", "seconds_per_image"):
                assert value["ci95"] is None and value["mean"] > 0
            elif metric in ("pointing_game", "energy_pointing_game"):    # 2 images make one mosaic: no interval
                assert value["ci95"] is None and value["mean"] is not None
            else:
                lo, hi = value["ci95"]
                assert lo < value["mean"] < hi or lo == value["mean"] == hi
    # Grad-CAM's deletion area recomputed: two images, each for its own predicted class
    x, _ = model_inputs(model, 2)
    targets = model.forward(x).argmax(axis=1)
    cam = pixel_map(registry.get("gradcam").run(model, x, targets).map, "layer", (32, 32))
    areas = auc(deletion_curve(softmax_score(model, targets), x, cam, steps=10, seed=0))
    mean, lo, hi = mean_ci95(areas)
    assert lo < mean < hi
    entry = data["methods"]["gradcam"]["deletion_auc"]
    assert entry["mean"] == pytest.approx(mean, abs=1e-5) and entry["ci95"] == pytest.approx([lo, hi], abs=1e-5)
    assert f"| Grad-CAM | {mean:.3f} [{lo:.3f}, {hi:.3f}] |" in out
    assert data["methods"]["gradcam"]["passes"]["mean"] == 2.0
    assert set(data["baselines"]["centre"]) == set(METRICS) - {"passes", "seconds_per_image"}
    assert data["baselines"]["centre"]["pointing_game"]["mean"] == 0.25            # the four centre pixels tie
    assert sorted(p.name for p in folder.iterdir()) == ["scorecard_resnet20_cifar10_curves.png",
                                                         "scorecard_resnet20_cifar10_maps.png",
                                                         "scorecard_resnet20_cifar10_trust.png"]


def test_scorecard_says_which_methods_and_games_do_not_apply(tmp_path, capsys):
    shipped("vgg_cifar10")
    js = tmp_path / "card.json"
    code, out, err = run(capsys, "scorecard", "--model", "vgg_cifar10", "--images", "2", "--methods", "cam,gradcam",
                         "--json", str(js))
    assert code == 0, err
    assert "| CAM | n/a |" in out and "pointing game" not in out.splitlines()[0]
    assert "- pointing games: not applicable: vgg_cifar10 does not accept a 64x64 mosaic" in out
    data = json.loads(js.read_text())
    assert list(data["methods"]["cam"]) == ["not_applicable"]
    game = data["methods"]["gradcam"]["pointing_game"]
    assert game["mean"] is None and "in_features=2048" in game["not_applicable"]


@pytest.mark.parametrize("argv, message", [
    (["sanity", "--model", "vgg_cifar10", "--methods", "gradcan"], "unknown method 'gradcan'; did you mean 'gradcam'"),
    (["scorecard", "--model", "vgg_cifar10", "--images", "301"], "between 1 and 300"),
    (["scorecard", "--model", "vgg_cifar10", "--images", "0"], "expected a positive integer"),
    (["sanity", "--model", "vgg_cifar10", "--mode", "bottom-up"], "invalid choice: 'bottom-up'"),
    (["scorecard", "--model", "vgg_cifar10", "--json", "/nonexistent-folder/x.json"], "does not exist"),
])
def test_bad_arguments_are_one_line_errors_before_any_work(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and message in err and err.startswith("minicnn: error:") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["sanity", "scorecard"])
def test_existing_files_are_replaced_only_with_force_and_all_outputs_are_written_together(tmp_path, capsys, command):
    # The one overwrite rule of every command (minicnn.util.atomic.Outputs): refused before any work, one line.
    shipped("vgg_cifar10")
    js = tmp_path / "r.json"
    figure = ["--out", str(tmp_path / "r.png")] if command == "sanity" else ["--out-dir", str(tmp_path / "figs")]
    js.write_text("keep me")
    argv = [command, "--model", "vgg_cifar10", "--images", "1", "--methods", "gradcam", "--json", str(js), *figure]
    code, out, err = run(capsys, *argv)
    assert code != 0 and "already exists" in err and "--force" in err and len(err.strip().splitlines()) == 1
    assert js.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
    code, out, err = run(capsys, *argv, "--force")
    assert code == 0, err
    assert json.loads(js.read_text())["images"] == 1
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.png"))
    assert written == (["r.png", "r_curves.png"] if command == "sanity" else
                       ["figs/scorecard_vgg_cifar10_curves.png", "figs/scorecard_vgg_cifar10_maps.png",
                        "figs/scorecard_vgg_cifar10_trust.png"])


def test_an_output_that_names_the_weights_is_refused(tmp_path, capsys):
    weights = tmp_path / "m.npz"
    from minicnn.models.shipped import locate
    weights.write_bytes(locate("vgg_cifar10")[0].read_bytes())
    code, out, err = run(capsys, "sanity", "--model", str(weights), "--images", "1", "--json", str(weights), "--force")
    assert code != 0 and "same file" in err and len(err.strip().splitlines()) == 1


def first_of_each_class(root, classes=("airplane", "automobile", "bird", "cat")):
    """root/test/<class>/000.jpg: the first shipped test image of each class, so the order class by class in
    turn is the shipped order's first len(classes) images."""
    from minicnn.inputs.samples import sample_images
    for cls in classes:
        (root / "test" / cls).mkdir(parents=True)
        (root / "test" / cls / "000.jpg").write_bytes(sample_images(cls)[0][0].read_bytes())
    return root


def test_scorecard_and_sanity_on_data_take_every_image_of_its_test_split(tmp_path, capsys):
    model = shipped("resnet20_cifar10")
    root = first_of_each_class(tmp_path / "data")
    js = tmp_path / "card.json"
    code, out, err = run(capsys, "scorecard", "--model", "resnet20_cifar10", "--data", str(root), "--images", "all",
                         "--methods", "saliency", "--json", str(js))
    assert code == 0, err
    assert f"data: the first 4 of the 4 images of the test split of {root}, class by class in turn" in err
    data = json.loads(js.read_text())
    assert data["images"] == 4 and data["data"] == f"the 4 images of the test split of {root}"
    from minicnn.metrics.scoring import score_images
    x, _ = model_inputs(model, 4)                                  # the same images: the shipped order's first 4
    direct = score_images(model, ["saliency"], x, list(range(4)), seed=0)["saliency"]
    for metric in ("deletion_auc", "insertion_auc", "road_morf", "road_lerf", "occlusion_spearman", "sparseness"):
        mean, lo, hi = mean_ci95(direct[metric])
        entry = data["methods"]["saliency"][metric]
        assert entry["mean"] == pytest.approx(mean, abs=1e-5) and entry["ci95"] == pytest.approx([lo, hi], abs=1e-5)
    js = tmp_path / "sanity.json"
    code, out, err = run(capsys, "sanity", "--model", "resnet20_cifar10", "--data", str(root), "--images", "2",
                         "--methods", "saliency", "--mode", "independent", "--json", str(js))
    assert code == 0, err
    on_data = json.loads(js.read_text())
    code, out, err = run(capsys, "sanity", "--model", "resnet20_cifar10", "--images", "2", "--methods", "saliency",
                         "--mode", "independent", "--json", str(js), "--force")
    assert code == 0, err
    plain = json.loads(js.read_text())
    assert "data" not in plain and on_data.pop("data") == f"the 4 images of the test split of {root}"
    assert {k: v for k, v in on_data.items() if k != "methods"} == {k: v for k, v in plain.items() if k != "methods"}
    for s, values in plain["methods"]["saliency"].items():
        assert on_data["methods"]["saliency"][s] == pytest.approx(values, abs=1e-6), s


@pytest.mark.parametrize("command", ["scorecard", "sanity"])
@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "none", "dataset not found"),
    (lambda tmp: (tmp / "notes.txt", (tmp / "notes.txt").write_text("hi"))[0], "is not a dataset minicnn can read"),
    (lambda tmp: first_of_each_class(tmp / "four"), "between 1 and 4 (the 4 images of the test split of"),
])
def test_a_missing_or_bad_data_is_a_one_line_error_before_any_work(tmp_path, capsys, monkeypatch, command, make,
                                                                    message):
    data = make(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run(capsys, command, "--model", "resnet20_cifar10", "--data", str(data), "--images", "5",
                         "--json", "r.json")
    assert code == 2 and err.startswith("minicnn: error:") and len(err.strip().splitlines()) == 1, err
    assert message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
