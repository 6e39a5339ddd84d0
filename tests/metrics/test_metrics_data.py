"""--data for the scorecard and the sanity check: a dataset's test split, class by class in turn.

The order is written down by hand on tiny folder datasets made of shipped JPEGs (the CIFAR-10
layout test/<class>/*.jpg), and the shipped folder read as --data gives the shipped images. A chunk's
cache key holds a digest of its inputs: other images under the same numbers are computed again.
"""

import shutil
import zipfile

import numpy as np
import pytest
from inputs.test_datasets import _cifar_batch, _make_cifar_tar

from metrics.test_metrics_chunks import in_this_process, small_resnet, small_weights  # noqa: F401  (fixtures)
from minicnn.errors import ImageError, InputError
from minicnn.explain import registry
from minicnn.inputs.images import load_image
from minicnn.inputs.preprocess import preprocess
from minicnn.inputs.samples import DATA_DIR
from minicnn.metrics import distributed as dist
from minicnn.metrics import sanity, scorecard
from minicnn.metrics.runs import model_inputs, shipped_test_images
from minicnn.metrics.scorecard import plan
from minicnn.metrics.testset import TestImages, class_by_class
from minicnn.util.chunkcache import array_digest
from minicnn.util.cluster import Cluster

SAMPLES = DATA_DIR / "cifar10" / "test"


def shipped_file(cls: str, k: int):
    return sorted((SAMPLES / cls).glob("*.jpg"))[k]


def folder_dataset(root, files: dict[str, list[int]], rename=lambda k: f"{k:03d}.jpg"):
    """root/test/<class>/<name>.jpg: the shipped images ``files[class]`` (their numbers in the class)."""
    for cls, ks in files.items():
        (root / "test" / cls).mkdir(parents=True)
        for j, k in enumerate(ks):
            shutil.copy(shipped_file(cls, k), root / "test" / cls / rename(j))
    return root


def test_class_by_class_by_hand():
    # labels of classes a, b, c: a0 a1 a2 b0 c0 c1 -> a0 b0 c0 a1 c1 a2
    np.testing.assert_array_equal(class_by_class([0, 0, 0, 1, 2, 2]), [0, 3, 4, 1, 5, 2])
    np.testing.assert_array_equal(class_by_class([2, 0, 2, 1, 0]), [1, 3, 0, 4, 2])   # a0 b0 c0 a1 c1
    assert len(class_by_class([])) == 0


def test_a_folder_and_its_zip_in_order_and_the_first_n(tmp_path):
    root = folder_dataset(tmp_path / "d", {"airplane": [0, 1, 2], "bird": [0], "cat": [3, 4]})
    want = [("airplane", 0), ("bird", 0), ("cat", 3), ("airplane", 1), ("cat", 4), ("airplane", 2)]
    pictures = np.stack([load_image(shipped_file(c, k)) for c, k in want])
    labels = [["airplane", "bird", "cat"].index(c) for c, _ in want]
    archive = tmp_path / "d.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(root.rglob("*.jpg")):
            z.write(f, f.relative_to(root).as_posix())
    for data in (root, archive):
        images = TestImages(data)
        assert len(images) == 6 and images.classes == ["airplane", "bird", "cat"]
        got, got_labels = images.first("all")
        np.testing.assert_array_equal(got, pictures)
        np.testing.assert_array_equal(got_labels, labels)
        np.testing.assert_array_equal(images.first(4)[0], pictures[:4])
        with pytest.raises(InputError, match=r"between 1 and 6 \(the 6 images of the test split of"):
            images.first(7)


def test_the_shipped_folder_as_data_gives_the_shipped_images_in_their_order():
    pictures, labels = TestImages(DATA_DIR / "cifar10").first(25)
    shipped_pictures, shipped_labels, _ = shipped_test_images(25)
    np.testing.assert_array_equal(pictures, shipped_pictures)
    np.testing.assert_array_equal(labels, shipped_labels)


def test_the_cifar_archive_in_order(tmp_path):
    batch = _cifar_batch("test_batch")
    labels = np.array(batch[b"labels"])
    by_class = {c: [i for i in range(len(labels)) if labels[i] == c] for c in range(10)}
    order = [by_class[c][r] for r in range(len(labels)) for c in range(10) if r < len(by_class[c])]
    pictures = batch[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    images = TestImages(_make_cifar_tar(tmp_path))
    got, got_labels = images.first("all")
    np.testing.assert_array_equal(got, pictures[order])
    np.testing.assert_array_equal(got_labels, labels[order])


def test_more_pictures_than_the_memory_bound_are_refused_before_decoding(tmp_path, monkeypatch):
    from minicnn.metrics import testset
    images = TestImages(folder_dataset(tmp_path / "d", {"airplane": [0, 1], "bird": [0]}))
    monkeypatch.setattr(testset, "MAX_PICTURE_BYTES", 2 * 32 * 32 * 3)
    images.first(2)
    with pytest.raises(InputError, match="ask for fewer --images"):
        images.first(3)


def test_the_scorecard_on_data_is_the_run_on_those_images(small_resnet, tmp_path):  # noqa: F811
    """scorecard(data=folder, images="all") against the metrics computed on the images stacked by hand."""
    model = small_resnet
    root = folder_dataset(tmp_path / "d", {"airplane": [0, 1], "automobile": [0], "bird": [0], "cat": [0]})
    by_hand = [("airplane", 0), ("automobile", 0), ("bird", 0), ("cat", 0), ("airplane", 1)]
    x = preprocess(np.stack([load_image(shipped_file(c, k)) for c, k in by_hand]), model.meta["preprocessing"])
    np.testing.assert_array_equal(model_inputs(model, "all", TestImages(root))[0], x)
    card = scorecard(model, methods="saliency", images="all", data=root, progress=False)
    assert card.images == 5 and card.data.startswith("the 5 images of the test split of")
    from minicnn.metrics.scoring import score_images
    direct = score_images(model, ["saliency", "random"], x, np.arange(5), seed=0)
    for key in ("saliency", "random"):
        for metric in ("deletion_auc", "insertion_auc", "road_morf", "road_lerf", "occlusion_spearman"):
            np.testing.assert_allclose(card.values[key][metric], direct[key][metric], atol=1e-5, err_msg=metric)
    # the mosaics are made of the dataset's images (or the games say why not)
    work = plan(model, [registry.get("saliency")], "all", seed=0, steps=10, data=TestImages(root))
    if work.tiles is None:
        assert "images of the dataset" in work.localisation_note
    else:
        h, w = x.shape[2:]
        for tiles, group in zip(work.tiles, work.groups):
            np.testing.assert_array_equal(tiles[:, :h, :w], x[group[0]])
            np.testing.assert_array_equal(tiles[:, h:, w:], x[group[3]])


def test_a_cached_chunk_is_never_reused_for_other_images(small_resnet, small_weights, tmp_path, monkeypatch):  # noqa: F811
    model = small_resnet
    a = folder_dataset(tmp_path / "a", {"airplane": [0, 1], "automobile": [0, 1]})
    b = folder_dataset(tmp_path / "b", {"airplane": [1, 0], "automobile": [1, 0]})   # the same, other order
    cluster = Cluster(workers=2, chunk=2, cache=str(tmp_path / "cache"))
    runs = []

    def run(what, data, **kwargs):
        runs.append([])
        monkeypatch.setattr(dist, "run_tasks", in_this_process(runs[-1]))
        return what(model, methods="saliency", images="all", data=data, progress=False, cluster=cluster,
                    source=small_weights, **kwargs)

    first = run(scorecard, a)
    assert len(runs[-1]) >= 2                          # images 0-1 and 2-3, and any mosaics
    run(scorecard, a)
    assert runs[-1] == []                              # the same images: every chunk from the cache
    other = run(scorecard, b)
    assert len(runs[-1]) == len(runs[0])               # other images under the same numbers: all again
    assert not np.allclose(other.values["saliency"]["deletion_auc"], first.values["saliency"]["deletion_auc"])
    run(sanity, a, mode="independent")
    assert len(runs[-1]) == 2
    run(sanity, a, mode="independent")
    assert runs[-1] == []
    run(sanity, b, mode="independent")
    assert len(runs[-1]) == 2


def test_the_digest_of_a_chunks_inputs():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    assert array_digest(x) == array_digest(x.copy()) == array_digest(np.asfortranarray(x))
    y = x.copy()
    y[1, 2, 3] += 1
    for other in (y, x.astype(np.float64), x.reshape(3, 2, 4), x[::-1]):
        assert array_digest(other) != array_digest(x)
    assert array_digest(x, np.array([1])) != array_digest(x, np.array([2])) != array_digest(x)


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "none", "dataset not found"),
    (lambda tmp: (tmp / "notes.txt", (tmp / "notes.txt").write_text("hi"))[0], "is not a dataset minicnn can read"),
    (lambda tmp: (tmp / "empty", (tmp / "empty" / "test").mkdir(parents=True))[0], "has no class folders"),
])
def test_a_bad_dataset_is_a_one_line_error(tmp_path, make, message):
    with pytest.raises(ImageError, match=message):
        TestImages(make(tmp_path))
