"""The server's Grad-CAM steps, the overwrite rule and the TensorFlow Lite converter, on cases built by hand.

Tiny models whose feature maps speak for and against a class, files and
links that appear while a run computes, and TFLite graphs whose layouts
(per-channel scales on a depthwise kernel, a 1x3 kernel, uneven SAME
padding on a 7x8 input, an absent bias) only a correct conversion gets
right. tests/mutation/mutants_app.py lists the mistakes they catch.
"""

import os
import stat
from types import SimpleNamespace

import numpy as np
import pytest
from models.test_convert_tflite import GraphMaker, run_graph
from numpy.lib.stride_tricks import sliding_window_view

from minicnn import explain
from minicnn.errors import InputError, OutputError
from minicnn.inputs.preprocess import preprocess
from minicnn.layers import AdaptiveAvgPool2d, Conv2d, Flatten, Linear, ReLU, Sequential
from minicnn.model import Model
from minicnn.models.convert.tflite import convert_graph, same_padding
from minicnn.server import api
from minicnn.util.atomic import Outputs, atomic_output

TOL = dict(rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- the Grad-CAM steps

@pytest.fixture(scope="module")
def twelve_maps():
    """x (1, 1, 2, 3) > 0 -> 1x1 conv to 12 maps -> ReLU "relu" -> GAP -> dense (2 classes).

    Maps 0-9 are w_k x + b_k > 0; maps 10 and 11 have w = -1, b = 0: all zero. Class 0's row of W
    has 7 positive and 3 negative weights on maps 0-9, class 1's 3 positive and 7 negative.
    """
    rng = np.random.default_rng(0)
    conv = Conv2d(1, 12, 1)
    w = np.r_[rng.uniform(0.5, 2.0, 10), -1.0, -1.0]
    conv.params = {"weight": w.reshape(12, 1, 1, 1), "bias": np.r_[rng.uniform(0.1, 1.0, 10), 0.0, 0.0]}
    signs = np.array([[1, 1, -1, 1, 1, -1, 1, 1, -1, 1], [-1, -1, 1, -1, -1, 1, -1, -1, 1, -1]])
    fc = Linear(12, 2)
    W = np.c_[signs * rng.uniform(0.2, 3.0, (2, 10)), rng.standard_normal((2, 2))]
    fc.params = {"weight": W, "bias": np.zeros(2)}
    model = Model(Sequential([("conv", conv), ("relu", ReLU()), ("avgpool", AdaptiveAvgPool2d(1)),
                              ("flatten", Flatten()), ("fc", fc)]),
                  {"name": "twelve", "classes": ["a", "b"], "input_size": [1, 2, 3]})
    x = rng.uniform(0.5, 1.5, (1, 1, 2, 3))
    A = np.maximum(w[:, None, None] * x[0] + conv.params["bias"][:, None, None], 0)   # (12, 2, 3)
    return model, x, A, W


@pytest.mark.parametrize("c, shown_for", [(0, 6), (1, 3)])
def test_gradcam_steps_show_the_maps_for_and_against_by_hand(twelve_maps, c, shown_for):
    model, x, A, W = twelve_maps
    r = explain.gradcam(model, x, c, "relu")
    steps = api.gradcam_steps(model, x, r)
    alpha = W[c] / 6                                           # dy^c/dA^k_ij = W[c, k] / Z at every position
    contribution = alpha * A.mean(axis=(1, 2))                 # map k's share of mean(sum_k alpha_k A^k)
    np.testing.assert_allclose(steps["alpha"], alpha, **TOL)
    np.testing.assert_allclose(steps["contribution"], contribution, **TOL)
    S = np.einsum("k,kij->ij", alpha, A)
    assert (S < 0).any() == (c == 1)                           # for class 1 the ReLU step changes something
    np.testing.assert_allclose(np.reshape(steps["weighted_sum"]["data"], S.shape), S, **TOL)
    np.testing.assert_allclose(np.reshape(steps["relu"]["data"], S.shape), np.maximum(S, 0), **TOL)
    positive = [k for k in np.argsort(-contribution) if contribution[k] > 0]
    negative = [k for k in np.argsort(contribution) if contribution[k] < 0]
    assert len(positive) == 7 - 4 * c and contribution[10] == contribution[11] == 0
    want = [(k, "for") for k in positive[:6]] + [(k, "against") for k in negative[:2]]
    assert [(m["k"], m["side"]) for m in steps["maps"]] == want
    assert sum(m["side"] == "for" for m in steps["maps"]) == shown_for
    for m in steps["maps"]:
        np.testing.assert_allclose(m["mean"], A[m["k"]].mean(), **TOL)
        np.testing.assert_allclose(m["contribution"], contribution[m["k"]], **TOL)
    assert steps["equal_to_gradcam"]


def test_the_input_size_limit_is_sixteen_times_the_models_pixels():
    model = SimpleNamespace(input_size=[3, 2, 4], name="m")  # 8 pixels: at most 128
    api.check_input_size(model, np.zeros((1, 3, 8, 16)))
    with pytest.raises(InputError, match="more than 16 times"):
        api.check_input_size(model, np.zeros((1, 3, 8, 17)))


def test_query_options_are_converted_and_json_has_no_nan():
    assert api.explain_options({"model": "m", "steps": "7", "noise_level": "0.25"}) == {"steps": 7, "noise_level": 0.25}
    assert api.json_floats(np.array([1.5, np.nan, -np.inf], np.float32)) == [1.5, None, None]
    assert api.default_model(SimpleNamespace(names=["vgg_cifar10", api.DEFAULT_MODEL])) == api.DEFAULT_MODEL
    assert api.default_model(SimpleNamespace(names=["vgg_cifar10"])) == "vgg_cifar10"


# ---------------------------------------------------------------- the overwrite rule

def test_a_dangling_link_at_the_output_is_refused_before_the_work(tmp_path):
    link = tmp_path / "out.png"
    link.symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(OutputError, match="already exists"):
        Outputs().output(link)
    assert link.is_symlink() and not (tmp_path / "nowhere.png").exists()


def without_hard_links(monkeypatch):
    """As on a file system without hard links (FAT, some network shares): os.link fails, backups are copies."""
    def refuse(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")
    monkeypatch.setattr(os, "link", refuse)


@pytest.mark.parametrize("appears", ["file", "dangling link"])
def test_an_output_that_appears_during_the_work_is_not_overwritten(tmp_path, appears):
    out = tmp_path / "out.txt"
    outputs = Outputs()
    outputs.output(out)
    with pytest.raises(OutputError, match="already exists"):
        with outputs.writing():
            with outputs.open(out) as f:
                f.write(b"ours")
            if appears == "file":
                out.write_bytes(b"theirs")                     # another program, while we computed
            else:
                out.symlink_to(tmp_path / "elsewhere.txt")
    if appears == "file":
        assert out.read_bytes() == b"theirs"
    else:
        assert out.is_symlink() and not (tmp_path / "elsewhere.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]     # no temporary left


def blocked(path):
    """Make the rename onto ``path`` fail: a folder that is not empty now stands there."""
    path.unlink()
    path.mkdir()
    (path / "inside").write_bytes(b"")


def write_then_block(paths, block):
    """Declare ``paths``, write b"new" to each inside ``writing()``, then block ``block``: the commit must fail."""
    outputs = Outputs(force=True)
    for path in paths:
        outputs.output(path)
    with pytest.raises(OutputError):
        with outputs.writing():
            for path in paths:
                with outputs.open(path) as f:
                    f.write(b"new")
            blocked(block)


@pytest.mark.parametrize("hard_links", [True, False])
def test_a_failed_rename_puts_back_every_output_already_renamed(tmp_path, monkeypatch, hard_links):
    if not hard_links:
        without_hard_links(monkeypatch)
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(b"old a")
    b.write_bytes(b"old b")
    write_then_block((a, b), b)
    assert a.read_bytes() == b"old a"                          # its backup came back
    new = tmp_path / "new.txt"                                 # a new output that was renamed goes again
    write_then_block((new, a), a)
    assert not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]
    c, d = tmp_path / "c.txt", tmp_path / "d.txt"               # without --force: the first is given its name,
    outputs = Outputs()                                        # the second finds a folder there, the first goes
    outputs.output(c)
    outputs.output(d)
    with pytest.raises(OutputError, match="already exists"):
        with outputs.writing():
            for p in (c, d):
                with outputs.open(p) as f:
                    f.write(b"new")
            d.mkdir()
    assert not c.exists() and d.is_dir()


def test_a_failed_block_leaves_no_temporaries_and_no_folders_it_created(tmp_path):
    out = tmp_path / "new" / "deeper" / "out.txt"
    outputs = Outputs()
    outputs.output(out, create_folder=True)
    with pytest.raises(RuntimeError):
        with outputs.writing():
            with outputs.open(out) as f:
                f.write(b"half")
            raise RuntimeError("the work failed")
    assert list(tmp_path.iterdir()) == []


def test_links_pipes_and_two_names_for_one_output_are_refused(tmp_path):
    link = tmp_path / "link.png"
    link.symlink_to(tmp_path / "image.png")                    # dangling: the input does not exist yet
    outputs = Outputs(force=True)
    outputs.input(tmp_path / "image.png", "IMAGE")
    with pytest.raises(OutputError, match="same file as IMAGE"):
        outputs.output(link, "--out")
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(OutputError, match="not a regular file"):
        Outputs(force=True).output(pipe)
    outputs = Outputs()
    outputs.output(tmp_path / "x.png", "--out")
    with pytest.raises(OutputError, match="are the same file"):
        outputs.output(tmp_path / "." / "x.png", "--save")


def test_an_output_gets_the_mode_asked_for(tmp_path):
    with atomic_output(tmp_path / "a.bin") as f:
        f.write(b"1")
    with atomic_output(tmp_path / "b.bin", mode=0o640) as f:
        f.write(b"2")
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.bin").stat().st_mode) == 0o640


# ---------------------------------------------------------------- the TensorFlow Lite converter

def test_same_padding_by_hand():
    assert same_padding(7, 3, 2, 1) == (1, 1)                  # out = ceil(7 / 2) = 4: 3*2 + 3 - 7 = 2
    assert same_padding(8, 3, 2, 1) == (0, 1)                  # the odd row at the bottom
    assert same_padding(8, 3, 1, 2) == (2, 2)                  # dilation 2: a 5-wide window
    assert same_padding(8, 1, 2, 1) == (0, 0)


def converted_and_reference(graph, seed=1):
    model, _ = convert_graph(graph, meta={"name": "hand"})
    _, h, w, _ = graph.tensors[graph.inputs[0]].shape
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    x = preprocess(img, model.meta["preprocessing"], dtype=np.float64)
    assert model.meta["preprocessing"]["mean"][0] == 128 / 255
    return model, model.astype(np.float64).forward(x), (img[None].astype(np.float64) - 128) / 128


def head(g, classes=5, bias=True):
    _, hh, ww, c = g.out_shape()
    g.op("AVERAGE_POOL_2D", [g.current], (1, 1, 1, c), padding="VALID", stride=(1, 1), filter=(hh, ww),
         activation="NONE")
    wt = g.weights("classifier/weights", (classes, 1, 1, c))
    b = g.bias("classifier/bias", classes) if bias else -1
    g.op("CONV_2D", [g.current, wt, b], (1, 1, 1, classes), padding="VALID", stride=(1, 1), dilation=(1, 1),
         activation="NONE")
    g.op("RESHAPE", [g.current], (1, classes))


def test_per_channel_scales_of_a_depthwise_kernel_follow_its_channels():
    g = GraphMaker(8, 8, seed=3)
    g.conv(3, 3, depthwise=True, act="RELU", per_channel=True)     # 3 channels, scales along TFLite's axis 3
    g.conv(6, 1)
    head(g)
    graph = g.graph()
    assert graph.tensors[graph.operators[0].inputs[1]].axis == 3
    model, y, x_nhwc = converted_and_reference(graph)
    np.testing.assert_allclose(y, run_graph(graph, x_nhwc), rtol=1e-10, atol=1e-10)


def nhwc_conv(a, w, b, stride, pads, act):
    """CONV_2D by its definition: a (1, H, W, C), w (F, kh, kw, C), pads ((top, bottom), (left, right))."""
    a = np.pad(a, ((0, 0), *pads, (0, 0)))
    win = sliding_window_view(a, w.shape[1:3], axis=(1, 2))[:, ::stride, ::stride]   # (1, Ho, Wo, C, kh, kw)
    y = np.einsum("nijcuv,fuvc->nijf", win, w) + b
    return np.clip(y, 0, 6) if act == "RELU6" else y


def test_a_one_by_three_kernel_with_uneven_same_padding_on_a_seven_by_eight_input():
    g = GraphMaker(7, 8, seed=4)
    wt = g.weights("stem/weights", (4, 1, 3, 3))
    g.tensors[wt].scale = [float(np.float32(0.1))]             # large enough weights for RELU6 to clip
    b = g.bias("stem/bias", 4)
    g.op("CONV_2D", [g.current, wt, b], (1, 4, 4, 4), padding="SAME", stride=(2, 2), dilation=(1, 1),
         activation="RELU6")
    head(g, bias=False)                                        # the classifier's bias is absent (index -1)
    graph = g.graph()
    model, y, x_nhwc = converted_and_reference(graph)
    assert model["features.0.pad"].padding == (0, 1, 0, 0)     # (left, right, top, bottom): rows need none
    assert "classifier.bias" not in model.state_dict()
    from models.test_convert_tflite import dequantised
    T = graph.tensors
    stem = nhwc_conv(x_nhwc, dequantised(T[wt]), dequantised(T[b]), 2, ((0, 0), (0, 1)), "NONE")
    assert stem.max() > 6                                      # RELU6 clips, a ReLU would not
    stem = np.clip(stem, 0, 6)
    logits = stem.mean(axis=(1, 2)) @ dequantised(T[graph.operators[2].inputs[1]])[:, 0, 0, :].T
    np.testing.assert_allclose(y, logits, rtol=1e-10, atol=1e-10)
