"""Batched passes: chunks of a batch on several threads give the numbers of one pass.

- ``parallel.run``: results in order, every piece run once, an exception raised
  only after all pieces ended, pieces never nest;
- ``Model``: a batch cut into chunks (in threads) gives the logits, activations,
  gradients, parameter gradients and input gradient of the same batch in one
  pass, for every ReLU rule, with ``stop_at`` and with ``replace``;
- ``keep=False``: the same logits, nothing kept, a clear error on backward;
- the dense layer split over threads is the same product, ReLU (every rule) and
  max pooling split by channels the same maps;
- ``evaluate``'s prefetching yields in order and raises where the item was;
- freed memory is kept for the next pass (glibc): a repeated pass takes no fresh pages.

The threads are forced (``threads`` patched to 3), so these tests run the
threaded code whether or not threadpoolctl is installed.
"""

import platform
import resource
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minicnn import memory, parallel
from minicnn import model as model_module
from minicnn.errors import InputError
from minicnn.gradcheck import relative_error
from minicnn.layers import MaxPool2d, ReLU, linear
from minicnn.layers.linear import linear_backward, linear_forward
from minicnn.models import zoo
from minicnn.models.evaluate import prefetched

SAME = 1e-12


@pytest.fixture
def three_threads(monkeypatch):
    """Three threads, whatever the machine: the pool and the chunked passes are used."""
    monkeypatch.setattr(parallel, "_blas_threads", lambda: 3)


def test_run_keeps_order_runs_each_piece_once_and_on_other_threads(three_threads):
    seen = []
    out = parallel.run(lambda i: seen.append((i, threading.current_thread().name)) or i * i, range(10))
    assert out == [i * i for i in range(10)]
    assert sorted(i for i, _ in seen) == list(range(10))
    assert all(name.startswith("minicnn") for _, name in seen)


def test_run_raises_after_every_piece_ended(three_threads):
    ended = []

    def piece(i):
        if i == 1:
            raise ValueError("piece 1")
        ended.append(i)

    with pytest.raises(ValueError, match="piece 1"):
        parallel.run(piece, range(6))
    assert sorted(ended) == [0, 2, 3, 4, 5]


def test_pieces_do_not_nest(three_threads):
    inner = parallel.run(lambda i: (parallel.threads(), parallel.run(lambda j: threading.current_thread().name,
                                                                      range(3))), range(2))
    for threads, names in inner:
        assert threads == 1 and len(set(names)) == 1            # a piece runs its own pieces itself


@given(st.integers(1, 300), st.sampled_from([1, 48, 3072, 150528]), st.integers(1, 4))
def test_batch_chunks_cover_the_batch_in_near_equal_parts(n, elements, workers):
    pieces = model_module.batch_chunks(n, elements, workers)
    assert [i for s in pieces for i in range(s.start, s.stop)] == list(range(n))
    sizes = [s.stop - s.start for s in pieces]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
    if workers > 1 and n >= workers and n * elements >= model_module.CHUNK_ELEMENTS // 2:
        assert len(pieces) % workers == 0 or len(pieces) == n            # as many chunks per thread


def models():
    """ResNet-20 (fully convolutional up to its pooling: fed 8x8 images here) and a small VGG with BatchNorm."""
    small_vgg = zoo.vgg([4, "M", 8, "M"], batch_norm=True, hidden=(16,), pool_size=(2, 2), num_classes=5)
    return {"resnet20": zoo.resnet20().astype(np.float64), "vgg": small_vgg.astype(np.float64)}


def one_pass(model, x, **forward):
    """Logits, activations, gradients, dx and parameter gradients of one unchunked pass."""
    original = model_module.CHUNK_ELEMENTS
    model_module.CHUNK_ELEMENTS = 10 ** 12
    try:
        with_one_thread = parallel._blas_threads
        parallel._blas_threads = lambda: 1
        try:
            return run_pass(model, x, **forward)
        finally:
            parallel._blas_threads = with_one_thread
    finally:
        model_module.CHUNK_ELEMENTS = original


def run_pass(model, x, relu="plain", stop_at=None, replace=None):
    logits = model.forward(x, replace=replace)
    acts = {k: np.array(v) for k, v in model.activations.items()}
    dlogits = np.random.default_rng(0).standard_normal(logits.shape)
    dx = model.backward(dlogits, relu=relu, param_grads=stop_at is None, stop_at=stop_at)
    grads = {k: np.array(v) for k, v in model.gradients.items()}
    return logits, acts, grads, dx, dict(model.param_grads)


@pytest.mark.parametrize("name", ["resnet20", "vgg"])
@pytest.mark.parametrize("relu", ["plain", "guided"])
def test_a_batch_in_chunks_on_threads_equals_one_pass(three_threads, monkeypatch, name, relu):
    model = models()[name]
    x = np.random.default_rng(1).standard_normal((7, 3, 8, 8))
    whole = one_pass(model, x, relu=relu)
    monkeypatch.setattr(model_module, "CHUNK_ELEMENTS", 2 * 192)             # chunks of 1 to 3 images
    chunked = run_pass(model, x, relu=relu)
    assert isinstance(model._run, model_module.Chunks) and len(model._run.pieces) > 1
    assert relative_error(chunked[0], whole[0]) < SAME
    for k in range(1, 3):
        assert chunked[k].keys() == whole[k].keys()
        for layer in whole[k]:
            assert relative_error(chunked[k][layer], whole[k][layer]) < SAME, layer
    assert relative_error(chunked[3], whole[3]) < SAME
    assert chunked[4].keys() == whole[4].keys() and whole[4]
    for key in whole[4]:                                                       # summed over the chunks
        assert relative_error(chunked[4][key], whole[4][key]) < SAME, key


@pytest.mark.parametrize("name", ["resnet20", "vgg"])
def test_the_inputs_of_a_batch_in_chunks_are_those_of_one_pass(three_threads, monkeypatch, name):
    model = models()[name]
    x = np.random.default_rng(11).standard_normal((7, 3, 8, 8))

    def inputs():
        model.forward(x)
        return {k: tuple(map(np.array, v)) if isinstance(v, tuple) else (np.array(v),)
                for k, v in model.inputs.items()}

    monkeypatch.setattr(parallel, "_blas_threads", lambda: 1)
    whole = inputs()
    monkeypatch.setattr(parallel, "_blas_threads", lambda: 3)
    monkeypatch.setattr(model_module, "CHUNK_ELEMENTS", 2 * 192)             # chunks of 1 to 3 images
    chunked = inputs()
    assert isinstance(model._run, model_module.Chunks) and chunked.keys() == whole.keys()
    assert any(len(v) == 2 for v in whole.values()) == (name == "resnet20")  # the Adds' pairs
    for layer, arrays in whole.items():
        assert len(chunked[layer]) == len(arrays)
        for got, want in zip(chunked[layer], arrays):
            assert got.shape == want.shape and relative_error(got, want) < SAME, layer


def test_chunked_activations_of_a_container_and_its_last_layer_are_one_array(three_threads, monkeypatch):
    monkeypatch.setattr(model_module, "CHUNK_ELEMENTS", 3072)
    model = zoo.vgg_cifar()
    model.forward(np.random.default_rng(2).standard_normal((4, 3, 32, 32)).astype(np.float32))
    assert isinstance(model._run, model_module.Chunks)
    assert model.activations["features"] is model.activations["features.20"]
    assert model.activations["features"].shape[0] == 4 and "features.20" in model.activations


def test_chunked_input_of_a_layer_is_the_output_of_the_one_before(three_threads, monkeypatch):
    """As in one pass, where it is the same array (LRP finds the BatchNorm fed by a convolution this way)."""
    monkeypatch.setattr(model_module, "CHUNK_ELEMENTS", 2 * 192)
    model = models()["resnet20"]
    model.forward(np.random.default_rng(12).standard_normal((5, 3, 8, 8)))
    assert isinstance(model._run, model_module.Chunks)
    assert model.inputs["bn1"] is model.activations["conv1"]
    assert model.inputs["layer1.0.bn1"] is model.activations["layer1.0.conv1"]
    a, b = model.inputs["layer1.0.add"]
    assert a is model.activations["layer1.0.bn2"] and a.shape[0] == 5


def test_chunked_stop_at_and_replace(three_threads, monkeypatch):
    model = zoo.resnet20().astype(np.float64)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 3, 8, 8))
    A = rng.standard_normal((5, 32, 4, 4))
    whole = one_pass(model, x, stop_at="layer2", replace={"layer2.1": A})
    monkeypatch.setattr(model_module, "CHUNK_ELEMENTS", 2 * 192)
    chunked = run_pass(model, x, stop_at="layer2", replace={"layer2.1": A})
    assert isinstance(model._run, model_module.Chunks)
    assert chunked[3] is None and whole[3] is None
    assert relative_error(chunked[0], whole[0]) < SAME
    np.testing.assert_array_equal(chunked[1]["layer2.1"], A)
    assert "layer1" not in chunked[2]
    assert relative_error(chunked[2]["layer2"], whole[2]["layer2"]) < SAME


@pytest.mark.parametrize("chunk_elements", [10 ** 12, 192])
@pytest.mark.parametrize("name", ["resnet20", "vgg"])
def test_keep_false_keeps_nothing_and_refuses_backward(three_threads, monkeypatch, chunk_elements, name):
    monkeypatch.setattr(model_module, "CHUNK_ELEMENTS", chunk_elements)
    model = models()[name]
    x = np.random.default_rng(4).standard_normal((3, 3, 8, 8))
    kept = model.forward(x)
    assert model.activations
    logits = model.forward(x, keep=False)
    assert relative_error(logits, kept) < SAME
    assert not model.activations and len(model.activations) == 0
    with pytest.raises(InputError, match="keep=False"):
        model.backward(np.ones_like(logits))


def test_forward_from_in_chunks_on_threads_equals_one_pass(three_threads, monkeypatch):
    model = models()["resnet20"]
    x = np.random.default_rng(10).standard_normal((5, 3, 8, 8))
    model.forward(x)
    A = model.activations["layer2"] * 1.5
    whole = model.forward_from("layer2", A)
    monkeypatch.setattr(model_module, "CHUNK_ELEMENTS", 2 * 32 * 4 * 4)
    chunked = model.forward_from("layer2", A)
    assert isinstance(model._run, model_module.Chunks)
    assert relative_error(chunked, whole) < SAME
    assert set(model.activations) == {"layer2", "layer3", "avgpool", "flatten", "linear"} | {
        n for n in model.layer_names if n.startswith("layer3.")}
    assert relative_error(model.forward_from("layer2", A, keep=False), whole) < SAME
    assert not model.activations


def test_dense_layer_split_over_threads_is_the_same_product(three_threads, monkeypatch):
    monkeypatch.setattr(parallel, "SPLIT_ELEMENTS", 1)
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((2, 11)), rng.standard_normal((7, 11)), rng.standard_normal(7)
    assert len(linear._blocks(7, w)) == 3
    np.testing.assert_allclose(linear_forward(x, w, b), x @ w.T + b, rtol=1e-13, atol=1e-13)
    dout = rng.standard_normal((2, 7))
    dx, dw, db = linear_backward(dout, x, w)
    np.testing.assert_allclose(dx, dout @ w, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(dw, dout.T @ x, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("layer", [ReLU(), MaxPool2d(2), MaxPool2d(3, 2, 1)], ids=["relu", "pool2", "pool3s2p1"])
def test_layers_split_by_channels_over_threads_give_the_same_maps(monkeypatch, layer):
    rng = np.random.default_rng(9)
    x = np.maximum(rng.integers(-2, 3, (2, 5, 9, 8)), 0).astype(np.float32)      # ties after a ReLU
    out, cache = layer.forward(x)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    whole = [layer.backward(dout, cache, relu=rule)[0] for rule in ("plain", "guided", "deconvnet")]
    monkeypatch.setattr(parallel, "_blas_threads", lambda: 3)
    monkeypatch.setattr(parallel, "SPLIT_ELEMENTS", 1)
    split_out, split_cache = layer.forward(x)
    np.testing.assert_array_equal(split_out, out)
    for rule, want in zip(("plain", "guided", "deconvnet"), whole):
        np.testing.assert_array_equal(layer.backward(dout, split_cache, relu=rule)[0], want)


def test_prefetched_yields_in_order_and_raises_where_the_item_was():
    assert list(prefetched(iter(range(5)))) == [0, 1, 2, 3, 4]

    def items():
        yield 1
        yield 2
        raise ValueError("third item")

    got = []
    with pytest.raises(ValueError, match="third item"):
        for item in prefetched(items()):
            got.append(item)
    assert got == [1, 2]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc's thresholds are glibc's")
def test_a_repeated_pass_reuses_the_memory_of_the_last_one():
    assert memory.keep_freed_memory() is True and memory.keep_freed_memory() is True
    model = zoo.vgg([8, "M", 16, "M"], hidden=(32,), pool_size=(2, 2), num_classes=10)
    x = np.random.default_rng(8).standard_normal((1, 3, 96, 96)).astype(np.float32)   # 0.3 MB activations
    seed = np.eye(10, dtype=np.float32)[[3]]
    for _ in range(2):
        model.forward(x)
        model.backward(seed, relu="guided")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    model.forward(x)
    model.backward(seed, relu="guided")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 200      # 4 KiB pages: < 1 MB fresh


def test_every_pass_holds_blas_to_one_thread_a_single_small_image_too(monkeypatch):
    """BLAS's threads, once woken, spin after their product: a pass of one CIFAR image
    holds BLAS to one thread as a batch does, and gives the thread count back after."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from minicnn.layers import conv

    if parallel._blas() is None or not parallel._blas().lib_controllers:
        pytest.skip("threadpoolctl sees no BLAS library")
    held = {lib.filepath for lib in parallel._blas().lib_controllers}    # NumPy's (SciPy may bring another)

    def blas_threads():
        return [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["filepath"] in held]

    seen = []
    real = conv.conv2d_forward
    monkeypatch.setattr(conv, "conv2d_forward", lambda *a, **k: seen.append(blas_threads()) or real(*a, **k))
    monkeypatch.setattr(parallel, "_CORES", 4)
    model = zoo.vgg([8, "M", 16, "M"], hidden=(32,), pool_size=(2, 2), num_classes=10)
    x = np.random.default_rng(10).standard_normal((1, 3, 16, 16)).astype(np.float32)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        model.forward(x)
        model.backward(np.eye(10, dtype=np.float32)[[3]])
        assert seen and all(threads == [1] * len(threads) for threads in seen)
        assert set(blas_threads()) == {2}


@pytest.fixture
def quiet(monkeypatch):
    """A machine with nothing else running (the rule reads the load average)."""
    monkeypatch.setattr(parallel, "load_per_core", lambda: 0.5)


def test_the_thread_rule_gives_blas_the_cores_for_one_large_image_and_chunks_for_a_batch(quiet, monkeypatch):
    assert parallel.blas_pass(1, 3 * 224 * 224)             # a photo: BLAS shares each large product
    assert not parallel.blas_pass(1, 3 * 32 * 32)           # one CIFAR image: too small to share
    assert not parallel.blas_pass(2, 3 * 224 * 224)         # chunks of a batch: one per core
    assert not parallel.blas_pass(4, 3 * 32 * 32)
    assert parallel.blas_pass(1, parallel.BLAS_IMAGE_ELEMENTS)
    assert not parallel.blas_pass(1, parallel.BLAS_IMAGE_ELEMENTS - 1)
    monkeypatch.setattr(parallel, "load_per_core", lambda: parallel.BUSY_LOAD_PER_CORE)
    assert parallel.blas_pass(1, 3 * 224 * 224)             # as busy as allowed
    monkeypatch.setattr(parallel, "load_per_core", lambda: parallel.BUSY_LOAD_PER_CORE + 0.01)
    assert not parallel.blas_pass(1, 3 * 224 * 224)         # busier: BLAS's threads would wait for each other


def test_the_load_per_core_is_the_load_average_over_the_cores(monkeypatch):
    monkeypatch.setattr(parallel.os, "getloadavg", lambda: (6.0, 1.0, 1.0))
    monkeypatch.setattr(parallel, "_CORES", 4)
    assert parallel.load_per_core() == 1.5


@pytest.mark.parametrize("shape, blas", [((1, 3, 224, 224), True), ((64, 3, 32, 32), False)])
def test_a_pass_uses_blas_threads_or_its_own_as_the_rule_says(quiet, monkeypatch, shape, blas):
    """One 224x224 image: BLAS keeps its 2 threads and the pass makes no pieces; a batch of
    64 CIFAR images: BLAS held to one thread, the chunks on minicnn's threads. The backward
    goes as its forward went."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from minicnn.layers import conv

    if parallel._blas() is None or not parallel._blas().lib_controllers:
        pytest.skip("threadpoolctl sees no BLAS library")
    held = {lib.filepath for lib in parallel._blas().lib_controllers}

    def blas_threads():
        return {lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["filepath"] in held}

    seen = []
    for name in ("conv2d_forward", "conv2d_backward"):
        real = getattr(conv, name)
        monkeypatch.setattr(conv, name, lambda *a, real=real, **k: seen.append(
            (blas_threads(), parallel.threads(), threading.current_thread().name)) or real(*a, **k))
    monkeypatch.setattr(parallel, "_CORES", 2)
    model = zoo.vgg([4, "M", 8, "M"], hidden=(8,), pool_size=(2, 2), num_classes=10)
    x = np.random.default_rng(11).standard_normal(shape).astype(np.float32)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        model.forward(x)
        model.backward(np.eye(10, dtype=np.float32)[[3] * shape[0]])
        assert blas_threads() == {2}                        # given back after the pass
    chunks = 1 if blas else len(model_module.batch_chunks(64, 3 * 32 * 32, 2))
    assert chunks > 1 or blas
    assert len([name for _, _, name in seen]) >= 4 * chunks    # each chunk's 2 forwards and 2 backwards at least
    if blas:
        assert all(threads == {2} and ours == 1 for threads, ours, _ in seen)
    else:
        assert all(threads == {1} for threads, _, _ in seen)
        assert {name.startswith("minicnn") for _, _, name in seen} == {True}
