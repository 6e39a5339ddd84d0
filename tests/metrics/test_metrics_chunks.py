"""Chunks: an image's values do not depend on the chunk it is computed in; finished chunks kept on disk.

Without Dask: what makes a run on a cluster equal to the serial run is proven here on one process.
Every random draw follows the image's number (minicnn.metrics.seeds), so scoring the images in two
chunks and joining them gives the values of one chunk of all (to 1e-5: float32 logits of scale ~10,
summed in batches of another size, may differ in the last bits and move a probability by ~1e-6).
The cache keeps arrays without pickles and reads back only whole, matching entries.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from test_explain_helpers import shipped

from metrics.test_metrics_scorecard import TINY_PREP
from minicnn.commands.cli import main
from minicnn.errors import WeightsError
from minicnn.explain import registry
from minicnn.metrics import distributed as dist
from minicnn.metrics import scorecard
from minicnn.metrics.baselines import random_map
from minicnn.metrics.comparison import compare_images
from minicnn.metrics.deletion import pixel_ranks
from minicnn.metrics.road import road_curves
from minicnn.metrics.runs import model_inputs, run_method
from minicnn.metrics.scoring import REFERENCE, score_images, score_mosaics
from minicnn.metrics.seeds import image_seed, uniform_rows
from minicnn.models.weights import save
from minicnn.models.worker import weights_digest, worker_model
from minicnn.util import chunkcache
from minicnn.util.chunkcache import ChunkCache
from minicnn.util.cluster import Cluster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def small_resnet():
    model = shipped("resnet20_cifar10")
    model.meta["preprocessing"] = TINY_PREP
    return model


def test_an_images_uniform_draws_are_its_rows_of_the_one_stream_of_the_serial_run():
    whole = np.random.default_rng(11).random((7, 3, 5))           # what one call on images 0..6 draws
    np.testing.assert_array_equal(uniform_rows(11, [4, 0, 6], (3, 5)), whole[[4, 0, 6]])
    np.testing.assert_array_equal(random_map(2, (3, 5), seed=11, ids=[5, 2]), whole[[5, 2]])
    relevance = np.zeros((7, 3, 5))                                # all ties: the order is the random key's
    np.testing.assert_array_equal(pixel_ranks(relevance[[3, 1]], seed=11, ids=[3, 1]),
                                  pixel_ranks(relevance, seed=11)[[3, 1]])
    assert image_seed(0, 1) != image_seed(0, 2) != image_seed(1, 1)


def test_an_images_road_noise_is_its_own():
    x = np.random.default_rng(1).standard_normal((5, 2, 6, 6))
    relevance = np.random.default_rng(2).standard_normal((5, 6, 6))
    score = lambda batch, rows: np.asarray(batch).sum(axis=(1, 2, 3))   # noqa: E731
    whole = road_curves(score, x, relevance, seed=9)
    part = road_curves(score, x[[3, 1]], relevance[[3, 1]], seed=9, ids=[3, 1])
    for order in ("morf", "lerf"):
        np.testing.assert_allclose(part[order], whole[order][[3, 1]], rtol=1e-12)
    other = road_curves(score, x, relevance, seed=10)
    assert not np.allclose(other["morf"], whole["morf"])


def test_a_seeded_method_draws_noise_per_image(small_resnet):
    model, method = small_resnet, registry.get("smoothgrad")
    x, _ = model_inputs(model, 4)
    targets = model.forward(x).argmax(axis=1)
    whole = run_method(model, method, x, targets, seed=2)
    part = run_method(model, method, x[2:], targets[2:], ids=[2, 3], seed=2)
    np.testing.assert_allclose(part.raw, whole.raw[2:], rtol=1e-5, atol=1e-6 * np.abs(whole.raw).max())
    moved = run_method(model, method, x[2:], targets[2:], ids=[0, 1], seed=2)   # other numbers: other noise
    assert not np.allclose(moved.raw, whole.raw[2:])


def joined(parts, key, value):
    return np.concatenate([p[key][value] for p in parts])


def test_scoring_in_two_chunks_gives_the_values_of_one(small_resnet):
    model = small_resnet
    x, _ = model_inputs(model, 5)
    keys = ["gradcam", "saliency", "random", "centre", "edges"]
    one = score_images(model, keys, x, np.arange(5), seed=4, examples=2)
    two = [score_images(model, keys, x[:2], [0, 1], seed=4, examples=2),
           score_images(model, keys, x[2:], [2, 3, 4], seed=4, examples=2)]
    for key in keys:
        for value in ("deletion_auc", "insertion_auc", "road_morf", "road_lerf", "occlusion_spearman",
                      "deletion", "insertion", "examples"):
            v = one[key][value]
            np.testing.assert_allclose(joined(two, key, value), v, atol=1e-5 * max(1, np.abs(v).max()),
                                       err_msg=f"{key} {value}")
    assert len(two[1]["gradcam"]["examples"]) == 0 and len(one["gradcam"]["examples"]) == 2
    assert sum(float(p["saliency"]["passes_sum"]) for p in two) == float(one["saliency"]["passes_sum"]) == 10
    # a chunk given its occlusion map uses it rather than computing another: the negated map, the negated ρ
    again = score_images(model, ["saliency"], x[:2], [0, 1], seed=4, reference=-two[0][REFERENCE]["map"])
    np.testing.assert_allclose(again["saliency"]["occlusion_spearman"], -two[0]["saliency"]["occlusion_spearman"],
                               atol=1e-12)


def test_mosaics_and_sanity_in_two_chunks_give_the_values_of_one(small_resnet):
    model = small_resnet
    x, _ = model_inputs(model, 3)
    tiles = np.stack([np.concatenate([np.concatenate([x[0], x[1]], 2), np.concatenate([x[2], x[0]], 2)], 1)] * 3)
    targets, target_tiles = np.array([1, 2, 3]), np.array([0, 1, 2])
    keys = ["gradcam", "random", "centre"]
    one = score_mosaics(model, keys, tiles, targets, target_tiles, np.arange(3), seed=1)
    two = [score_mosaics(model, keys, tiles[:1], targets[:1], target_tiles[:1], [0], seed=1),
           score_mosaics(model, keys, tiles[1:], targets[1:], target_tiles[1:], [1, 2], seed=1)]
    for key in keys:
        for value in ("pointing_game", "energy_pointing_game"):
            np.testing.assert_allclose(joined(two, key, value), one[key][value], atol=1e-6)
    whole = compare_images(model, ["gradcam"], x, np.arange(3), mode="independent", seed=5)
    parts = [compare_images(model, ["gradcam"], x[:1], [0], mode="independent", seed=5),
             compare_images(model, ["gradcam"], x[1:], [1, 2], mode="independent", seed=5)]
    for s in ("spearman_abs", "spearman", "ssim"):
        np.testing.assert_allclose(np.concatenate([p["gradcam"][s] for p in parts], axis=1), whole["gradcam"][s],
                                   atol=1e-5)
    assert "examples" in parts[0]["gradcam"] and "examples" not in parts[1]["gradcam"]


def test_the_cache_gives_back_what_was_put_and_nothing_else(tmp_path, monkeypatch):
    cache = ChunkCache(tmp_path / "c")
    key = {"kind": "test", "method": "gradcam", "ids": [0, 1], "settings": {"seed": 1}}
    arrays = {"deletion_auc": np.array([0.25, 0.5]), "skipped": np.array("why"), "passes_sum": np.array(2.0)}
    assert cache.get(key) is None
    cache.put(key, arrays)
    got = cache.get(key)
    assert got.keys() == arrays.keys() and all(np.array_equal(got[k], v) for k, v in arrays.items())
    assert str(got["skipped"]) == "why"
    assert os.listdir(tmp_path / "c") == [cache.path(key).name]           # one whole file, no temporary left
    for other in ({**key, "ids": [0, 2]}, {**key, "method": "saliency"}, {**key, "settings": {"seed": 2}}):
        assert cache.get(other) is None
    monkeypatch.setattr(chunkcache, "package_version", lambda: "9.9.9")  # another version: another key
    assert cache.get(key) is None
    monkeypatch.undo()
    # an entry renamed onto another key's name, damaged, too large or pickled is a miss, never an answer
    other = {**key, "ids": [5]}
    os.replace(cache.path(key), cache.path(other))
    assert cache.get(other) is None
    cache.path(key).write_bytes(b"PK\x03\x04 not a zip")
    assert cache.get(key) is None
    cache.put(key, arrays)
    monkeypatch.setattr(chunkcache, "MAX_ENTRY_BYTES", 100)
    assert cache.get(key) is None
    monkeypatch.undo()
    np.savez(cache.path(key), __key__=np.array(chunkcache.canonical(key)), bad=np.array([{"a": 1}], dtype=object))
    assert cache.get(key) is None
    # compressed members (which could unpack far past the bound: a zip bomb) are a miss, unread
    np.savez_compressed(cache.path(key), __key__=np.array(chunkcache.canonical(key)), big=np.zeros(10 ** 6))
    assert cache.path(key).stat().st_size < 100_000 and cache.get(key) is None
    os.unlink(cache.path(key))
    os.mkfifo(cache.path(key))                                             # not a regular file: refused, not read
    assert cache.get(key) is None


def test_a_serial_run_never_imports_dask(tmp_path):
    code = ("import sys\nfrom minicnn.commands.cli import main\n"
            "assert main(['scorecard', '--model', 'resnet20_cifar10', '--methods', 'saliency', '--images', '1', "
            "'--json', sys.argv[1]]) == 0\n"
            "assert main(['evaluate', '--model', 'resnet20_cifar10', '--limit', '5']) == 0\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed'))\n"
            "assert not loaded, loaded\nprint('no dask')\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "card.json")], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0 and "no dask" in done.stdout, done.stderr[-2000:]


def test_without_dask_the_cluster_flags_are_one_line(tmp_path):
    code = ("import sys\nsys.modules['distributed'] = None\nfrom minicnn.commands.cli import main\n"
            "sys.exit(main(['sanity', '--model', 'resnet20_cifar10', '--methods', 'saliency', '--images', '1', "
            "'--workers', '2']))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "minicnn[distributed]" in lines[0], done.stderr


@pytest.mark.parametrize("argv, message", [
    (["--cache", "c"], "--cache keeps the chunks of a run on Dask workers"),
    (["--workers", "0"], "expected a positive integer"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"], "not allowed with argument"),
    (["--workers", "2", "--chunk-size", "0"], "expected a positive integer"),
])
def test_bad_cluster_flags_are_one_line_errors_before_any_work(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status = main(["scorecard", "--model", "resnet20_cifar10", "--images", "1", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and message in err[0]
    assert os.listdir(tmp_path) == []


def test_a_cluster_is_either_local_or_a_scheduler():
    with pytest.raises(ValueError, match="either"):
        Cluster()
    with pytest.raises(ValueError, match="either"):
        Cluster(workers=2, scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(ValueError, match="workers"):
        Cluster(workers=10_000)


def test_images_all_takes_every_shipped_test_image(small_resnet):
    x, _ = model_inputs(small_resnet, "all")
    assert len(x) == 300


def in_this_process(seen, stop_after=None):
    """A stand-in for run_tasks that runs each task here, in order, recording the keys each computes."""
    def run(tasks, *, on_result=None, **kwargs):
        results = []
        for i, (function, args) in enumerate(tasks):
            seen.append(args[2])
            results.append(function(*args))
            on_result(i, results[-1])
            if stop_after is not None and i + 1 >= stop_after:
                raise KeyboardInterrupt
        return results
    return run


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory, small_resnet):
    path = tmp_path_factory.mktemp("weights") / "resnet20_12px.npz"
    save(small_resnet, path)
    return str(path)


def test_chunks_merge_to_the_serial_card_and_the_cache_computes_only_what_is_missing(small_resnet, small_weights,
                                                                                     tmp_path, monkeypatch):
    """The client's side of a cluster run, its tasks run here (minicnn.metrics.distributed, without Dask)."""
    model = small_resnet
    serial = scorecard(model, methods="gradcam,saliency", images=8, seed=3, progress=False)
    cluster = Cluster(workers=2, chunk=4, cache=str(tmp_path / "cache"))     # images 0-3, 4-7; mosaic 0, mosaic 1
    runs = []

    def card(methods="gradcam,saliency", seed=3, stop_after=None, source=small_weights):
        runs.append([])
        monkeypatch.setattr(dist, "run_tasks", in_this_process(runs[-1], stop_after))
        return scorecard(model, methods=methods, images=8, seed=seed, progress=False, cluster=cluster, source=source)

    with pytest.raises(KeyboardInterrupt):
        card("gradcam", stop_after=1)                       # interrupted after its first chunk
    card("gradcam")                                         # resumed: the three chunks not finished
    spread = card()                                         # a method more: only it, on every chunk
    again = card()                                          # all there: nothing computed
    assert runs[:4] == [[["gradcam", "random", "centre", "edges"]], [["gradcam", "random", "centre", "edges"]] * 3,
                        [["saliency"]] * 4, []]
    assert spread.mosaics == 2
    for key, values in serial.values.items():
        for metric, v in values.items():
            if metric != "seconds_per_image":
                for other in (spread, again):
                    np.testing.assert_allclose(other.values[key][metric], v, atol=1e-5 * max(1, np.abs(v).max()),
                                               err_msg=f"{key} {metric}")
    card(seed=4)                                            # another seed: another key
    assert len(runs[-1]) == 4
    other = tmp_path / "other.npz"                          # other weights under the same name: another key
    changed = shipped("resnet20_cifar10")
    changed.meta["preprocessing"] = TINY_PREP
    first = next(layer for _, layer in changed.layers() if "weight" in getattr(layer, "params", {}))
    first.params["weight"] = first.params["weight"] * 1.01
    save(changed, other)
    card(source=str(other))
    assert len(runs[-1]) == 4


def test_a_worker_refuses_weights_that_are_not_the_clients(small_weights):
    with pytest.raises(WeightsError, match="differs from the client's"):
        worker_model(small_weights, "0" * 64)
    assert worker_model(small_weights, weights_digest(small_weights)).name == "resnet20_cifar10"
