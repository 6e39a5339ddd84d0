"""Datasets: folder trees, zip files, the CIFAR-10 python archive (and tampered pickles)."""

import io
import os
import pickle
import struct
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from minicnn.errors import ImageError, InputError, UnknownNameError
from minicnn.inputs.datasets import class_names, open_dataset
from minicnn.inputs.samples import DATA_DIR

# ---------------------------------------------------------------------------
# A tiny image-folder tree: test/{cat: 3, dog: 2}, train/{cat: 1, dog: 1}

COUNTS = {"test": {"cat": 3, "dog": 2}, "train": {"cat": 1, "dog": 1}}


def _pixels(split, cls, k, size=(4, 5)):
    """A distinct, recognisable image for every file (PNG keeps it exactly)."""
    seed = hash((split, cls, k)) % 2**32
    return np.random.default_rng(seed).integers(0, 256, size + (3,), dtype=np.uint8)


def _png_bytes(a):
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "pets"
    for split, classes in COUNTS.items():
        for cls, n in classes.items():
            d = root / split / cls
            d.mkdir(parents=True)
            for k in range(n):
                (d / f"{k:04d}.png").write_bytes(_png_bytes(_pixels(split, cls, k)))
            (d / "notes.txt").write_text("not an image")
            (d / ".hidden.png").write_bytes(b"junk")
    return root


def _expected(split):
    images, labels = [], []
    for label, (cls, n) in enumerate(sorted(COUNTS[split].items())):
        for k in range(n):
            images.append(_pixels(split, cls, k))
            labels.append(label)
    return np.stack(images), np.array(labels)


def _all(ds, batch_size):
    xs, ys = zip(*ds.batches(batch_size))
    return list(xs), list(ys)


def test_folder_tree(tree):
    ds = open_dataset(tree)
    assert ds.classes == ["cat", "dog"] and len(ds) == 5 and ds.split == "test" and ds.format == "folder"
    xs, ys = _all(ds, 2)
    assert [len(y) for y in ys] == [2, 2, 1]
    assert all(x.dtype == np.uint8 and x.shape[1:] == (4, 5, 3) for x in xs)
    assert all(y.dtype == np.int64 for y in ys)
    want_x, want_y = _expected("test")
    np.testing.assert_array_equal(np.concatenate(xs), want_x)
    np.testing.assert_array_equal(np.concatenate(ys), want_y)
    train = open_dataset(str(tree), split="train")
    assert len(train) == 2 and [int(y) for y in next(train.batches(10))[1]] == [0, 1]
    assert "2 images, 2 classes" in repr(train)


def test_folder_split_none_reads_class_folders(tree):
    ds = open_dataset(tree / "test", split=None)
    assert ds.classes == ["cat", "dog"] and len(ds) == 5


def test_iteration_yields_single_images(tree):
    pairs = list(open_dataset(tree))
    assert len(pairs) == 5
    img, label = pairs[-1]
    assert img.shape == (4, 5, 3) and label == 1 and isinstance(label, int)


def test_unknown_split_lists_the_splits_found(tree):
    with pytest.raises(UnknownNameError) as e:
        open_dataset(tree, split="val")
    assert "test" in str(e.value) and "train" in str(e.value)
    with pytest.raises(UnknownNameError, match="did you mean 'test'"):
        open_dataset(tree, split="tests")


def test_mixed_sizes_in_a_batch_are_refused_but_iteration_works(tree):
    (tree / "test" / "dog" / "0009.png").write_bytes(_png_bytes(np.zeros((6, 6, 3), np.uint8)))
    ds = open_dataset(tree)
    with pytest.raises(ImageError, match="differ in size"):
        list(ds.batches(8))
    assert [img.shape for img, _ in ds][-1] == (6, 6, 3)


def test_a_broken_file_in_the_tree_names_it(tree):
    (tree / "test" / "cat" / "0001.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(ImageError, match="0001.png"):
        list(open_dataset(tree).batches(4))


@pytest.mark.parametrize("make, words", [
    (lambda root: root / "missing", "not found"),
    (lambda root: _write(root / "data.csv", b"a,b\n1,2\n"), "not a dataset"),
    (lambda root: _mkdirs(root / "empty", []), "no split folders"),
    (lambda root: _mkdirs(root / "noclass", ["test"]), "no class folders"),
    (lambda root: _mkdirs(root / "noimages", ["test/cat", "test/dog"]), "no images"),
])
def test_dataset_errors(make, words, tmp_path):
    with pytest.raises(ImageError) as e:
        open_dataset(make(tmp_path))
    assert words in str(e.value) and "\n" not in str(e.value)


def test_loose_images_get_a_hint(tmp_path):
    (tmp_path / "flat" / "test").mkdir(parents=True)
    _write(tmp_path / "flat" / "test" / "a.png", _png_bytes(np.zeros((2, 2, 3), np.uint8)))
    with pytest.raises(ImageError, match="one folder per class"):
        open_dataset(tmp_path / "flat")


@pytest.mark.parametrize("split", ["", "../test", 3])
def test_bad_split_argument(split, tree):
    with pytest.raises(InputError):
        open_dataset(tree, split=split)


@pytest.mark.parametrize("bs", [0, -1, 2.5, True])
def test_bad_batch_size(bs, tree):
    with pytest.raises(InputError):
        next(open_dataset(tree).batches(bs))


def _write(path, data):
    path.write_bytes(data)
    return path


def _mkdirs(root, subs):
    root.mkdir()
    for s in subs:
        (root / s).mkdir(parents=True)
    return root


# ---------------------------------------------------------------------------
# Zip files


def _zip_tree(path, prefix=""):
    with zipfile.ZipFile(path, "w") as z:
        for split, classes in COUNTS.items():
            for cls, n in classes.items():
                for k in range(n):
                    z.writestr(f"{prefix}{split}/{cls}/{k:04d}.png", _png_bytes(_pixels(split, cls, k)))
        z.writestr(f"{prefix}README.txt", "hello")
        z.writestr("__MACOSX/._junk.png", b"junk")
    return path


@pytest.mark.parametrize("prefix", ["", "pets/"], ids=["flat", "one-top-folder"])
def test_zip(prefix, tmp_path):
    ds = open_dataset(_zip_tree(tmp_path / "pets.zip", prefix))
    assert ds.classes == ["cat", "dog"] and len(ds) == 5 and ds.format == "zip"
    xs, ys = _all(ds, 3)
    want_x, want_y = _expected("test")
    np.testing.assert_array_equal(np.concatenate(xs), want_x)
    np.testing.assert_array_equal(np.concatenate(ys), want_y)
    assert len(open_dataset(tmp_path / "pets.zip", "train")) == 2
    with pytest.raises(UnknownNameError, match="test, train"):
        open_dataset(tmp_path / "pets.zip", "val")


def test_zip_with_wrong_layout(tmp_path):
    with zipfile.ZipFile(tmp_path / "flat.zip", "w") as z:
        z.writestr("a.png", _png_bytes(np.zeros((2, 2, 3), np.uint8)))
    with pytest.raises(ImageError, match="<split>/<class>/<file>"):
        open_dataset(tmp_path / "flat.zip")


def test_corrupt_zip_member_is_an_image_error(tmp_path):
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as z:
        z.writestr("test/cat/0.png", b"not a png")
    with pytest.raises(ImageError, match="test/cat/0.png"):
        list(open_dataset(tmp_path / "bad.zip").batches(1))


# ---------------------------------------------------------------------------
# The shipped CIFAR-10 samples

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_shipped_sample_folder():
    ds = open_dataset(DATA_DIR / "cifar10")
    assert ds.classes == CIFAR_CLASSES == class_names("cifar10")
    xs, ys = _all(ds, 128)
    assert [len(y) for y in ys] == [128, 128, 44]
    assert np.bincount(np.concatenate(ys)).tolist() == [30] * 10
    assert xs[0].shape[1:] == (32, 32, 3)


def test_shipped_train_subset_zip():
    ds = open_dataset(DATA_DIR / "cifar10_train_subset.zip", "train")
    assert ds.classes == CIFAR_CLASSES and len(ds) == 2000
    assert [e[1] for e in ds.entries[::200]] == list(range(10))
    with zipfile.ZipFile(DATA_DIR / "cifar10_train_subset.zip") as z:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())


def test_class_names():
    assert len(class_names("imagenet")) == 1000 and class_names("imagenet")[285] == "Egyptian cat"
    with pytest.raises(UnknownNameError):
        class_names("mnist")


# ---------------------------------------------------------------------------
# A tiny fake CIFAR-10 python archive

N_PER_BATCH = {"test_batch": 5, **{f"data_batch_{i}": 3 for i in range(1, 6)}}


def _cifar_batch(name):
    n = N_PER_BATCH[name]
    rng = np.random.default_rng(len(name) * 7 + n)
    return {b"batch_label": name.encode(), b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"{name}_{k}.png".encode() for k in range(n)]}


def _py2_style(obj):
    """Pickle as Python 2 wrote CIFAR-10: protocol 2, numpy.core module names."""
    return pickle.dumps(obj, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def _py2_pickle(batch):
    """Write a batch opcode by opcode as Python 2's cPickle did (str = SHORT_BINSTRING/BINSTRING)."""
    def s(b):
        return (b"U" + bytes([len(b)]) + b) if len(b) < 256 else (b"T" + struct.pack("<I", len(b)) + b)

    def item(v):
        if isinstance(v, bytes):
            return s(v)
        if isinstance(v, int):
            return b"J" + struct.pack("<i", v)
        if isinstance(v, list):
            return b"](" + b"".join(item(e) for e in v) + b"e"
        assert isinstance(v, np.ndarray) and v.dtype == np.uint8 and v.ndim == 2
        dtype = (b"cnumpy\ndtype\n" + s(b"u1") + b"K\x00K\x01\x87R"
                 b"(K\x03" + s(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
        shape = b"M" + struct.pack("<H", v.shape[0]) + b"M" + struct.pack("<H", v.shape[1]) + b"\x86"
        return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + s(b"b") + b"\x87R"
                b"(K\x01" + shape + dtype + b"\x89" + s(v.tobytes()) + b"tb")

    body = b"".join(item(k) + item(v) for k, v in batch.items())
    return b"\x80\x02}(" + body + b"u."


def test_hand_written_python2_pickle_reads_like_the_real_archive(tmp_path):
    folder = _make_cifar_folder(tmp_path, dump=_py2_pickle)
    assert b"cnumpy.core.multiarray" in (folder / "test_batch").read_bytes()
    # the standard unpickler agrees on what the hand-written bytes mean
    plain = pickle.loads((folder / "test_batch").read_bytes(), encoding="bytes")
    np.testing.assert_array_equal(plain[b"data"], _cifar_batch("test_batch")[b"data"])
    _check_cifar(open_dataset(folder))


def test_cifar_repr_does_not_decode(tmp_path):
    ds = open_dataset(_make_cifar_folder(tmp_path))
    assert "? images" in repr(ds)
    assert len(ds) == 5 and "5 images" in repr(ds)


def _make_cifar_folder(root, dump=_py2_style):
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    (d / "batches.meta").write_bytes(dump({b"label_names": [c.encode() for c in CIFAR_CLASSES],
                                           b"num_cases_per_batch": 10000, b"num_vis": 3072}))
    for name in N_PER_BATCH:
        (d / name).write_bytes(dump(_cifar_batch(name)))
    (d / "readme.html").write_text("<html></html>")
    return d


def _make_cifar_tar(root):
    folder = _make_cifar_folder(root / "src")
    tar = root / "cifar-10-python.tar.gz"
    with tarfile.open(tar, "w:gz") as t:
        t.add(folder, arcname="cifar-10-batches-py")
    return tar


def _check_cifar(ds, split="test"):
    assert ds.classes == CIFAR_CLASSES and ds.format == "cifar10"
    names = ["test_batch"] if split == "test" else [f"data_batch_{i}" for i in range(1, 6)]
    want = [_cifar_batch(n) for n in names]
    assert len(ds) == sum(len(b[b"labels"]) for b in want)
    xs, ys = _all(ds, 4)
    x, y = np.concatenate(xs), np.concatenate(ys)
    data = np.concatenate([b[b"data"] for b in want])
    np.testing.assert_array_equal(y, np.concatenate([b[b"labels"] for b in want]))
    # a row is 1024 red, 1024 green, 1024 blue values of a row-major 32x32 image
    assert x.shape == (len(data), 32, 32, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(x[:, 0, 0], data[:, [0, 1024, 2048]])
    np.testing.assert_array_equal(x[:, 31, 30], data[:, [31 * 32 + 30 + c * 1024 for c in range(3)]])


@pytest.mark.parametrize("where", ["parent", "folder"])
def test_cifar_folder(where, tmp_path):
    folder = _make_cifar_folder(tmp_path)
    ds = open_dataset(tmp_path if where == "parent" else folder)
    _check_cifar(ds)
    _check_cifar(open_dataset(folder, "train"), "train")


def test_cifar_tar_gz(tmp_path):
    tar = _make_cifar_tar(tmp_path)
    _check_cifar(open_dataset(tar))
    train = open_dataset(tar, split="train")
    assert len(train) == 15 and [len(y) for _, y in train.batches(4)] == [4, 4, 4, 3]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_written_by_python3(protocol, tmp_path):
    def dump(obj):
        return pickle.dumps({k.decode(): v for k, v in obj.items()}, protocol=protocol)
    _check_cifar(open_dataset(_make_cifar_folder(tmp_path, dump)))


def test_cifar_unknown_split(tmp_path):
    with pytest.raises(UnknownNameError, match="test, train"):
        open_dataset(_make_cifar_folder(tmp_path), "val")


def test_cifar_missing_train_batch_leaves_only_test(tmp_path):
    folder = _make_cifar_folder(tmp_path)
    (folder / "data_batch_3").unlink()
    assert len(open_dataset(folder)) == 5
    with pytest.raises(UnknownNameError, match="valid splits: test$"):
        open_dataset(folder, "train")


def test_cifar_wrong_content(tmp_path):
    folder = _make_cifar_folder(tmp_path)
    bad = _cifar_batch("test_batch")
    bad[b"data"] = bad[b"data"][:, :100]
    (folder / "test_batch").write_bytes(_py2_style(bad))
    with pytest.raises(ImageError, match="3072"):
        list(open_dataset(folder).batches(2))
    (folder / "test_batch").write_bytes(b"\x80\x02garbage")
    with pytest.raises(ImageError, match="test_batch"):
        list(open_dataset(folder).batches(2))


# ---------------------------------------------------------------------------
# Tampered pickles: nothing is executed, an ImageError is raised


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _WritesFile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return eval, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


_reconstruct = (np._core if hasattr(np, "_core") else np.core).multiarray._reconstruct


class _ObjectDtype:
    """A dtype whose state claims to hold Python objects (flags 63): memory-unsafe in numpy."""

    def __reduce__(self):
        return np.dtype, ("u1", False, True), (3, "|", None, None, None, -1, -1, 63)


class _ArrayWithForgedDtype:
    def __reduce__(self):
        return (_reconstruct, (np.ndarray, (0,), b"b"), (1, (2, 3072), _ObjectDtype(), False, b"\x07" * 6144))


@pytest.mark.parametrize("payload", [_RunsShell, _WritesFile], ids=["os.system", "builtins.eval"])
@pytest.mark.parametrize("member", ["test_batch", "batches.meta"])
def test_malicious_pickle_runs_nothing(payload, member, tmp_path):
    folder = _make_cifar_folder(tmp_path / "data")
    marker = tmp_path / "pwned"
    (folder / member).write_bytes(pickle.dumps({b"data": payload(marker), b"labels": [0]}, protocol=2))
    with pytest.raises(ImageError) as e:
        list(open_dataset(folder).batches(10))
    assert not marker.exists()
    assert "not allowed" in str(e.value) and member in str(e.value) and "\n" not in str(e.value)


def test_malicious_pickle_inside_tar(tmp_path):
    folder = _make_cifar_folder(tmp_path / "src")
    marker = tmp_path / "pwned"
    (folder / "test_batch").write_bytes(pickle.dumps(_RunsShell(marker), protocol=4))
    tar = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tar, "w:gz") as t:
        t.add(folder, arcname="cifar-10-batches-py")
    with pytest.raises(ImageError, match="os.system|posix.system"):
        list(open_dataset(tar).batches(10))
    assert not marker.exists()


def test_forged_dtype_state_is_ignored(tmp_path):
    folder = _make_cifar_folder(tmp_path)
    payload = pickle.dumps({b"data": _ArrayWithForgedDtype(), b"labels": [1, 2]}, protocol=2)
    (folder / "test_batch").write_bytes(payload)
    x, y = next(open_dataset(folder).batches(10))
    assert x.dtype == np.uint8 and (x == 7).all() and y.tolist() == [1, 2]


def test_object_dtype_is_refused(tmp_path):
    folder = _make_cifar_folder(tmp_path)
    payload = pickle.dumps({b"data": np.array([None, 1], dtype=object), b"labels": [0, 0]}, protocol=2)
    (folder / "test_batch").write_bytes(payload)
    with pytest.raises(ImageError, match="not allowed"):
        list(open_dataset(folder).batches(2))

