"""Hand-computed checks of the guards against hostile input, each at its boundary.

The seed, count and number checks; the regular-file and name checks; the
weights file's layer ranges and caps (exactly at each cap, then one over);
the server's Host, Origin and Content-Length rules and its caps on request
costs; the passes an estimate counts; the LRP relevance budget; class names
by synonym and prefix. ``tests/mutation/mutants_hardening.py`` plants a bug
in each and these tests must fail for it. Everything here is fast: no model
is built and no map computed (the specs are only walked).
"""

from __future__ import annotations

import http.client
import json
import math
import os
from types import SimpleNamespace

import numpy as np
import pytest
from server_helpers import running

from minicnn.errors import InputError, WeightsError
from minicnn.explain.estimate import estimate_seconds, passes, share_after
from minicnn.explain.lrp import relevance_budget
from minicnn.explain.target import class_index
from minicnn.models.architecture import (
    MAX_CHANNELS,
    MAX_CLASSES,
    MAX_DEPTH,
    MAX_ELEMENTS,
    MAX_LAYERS,
    MAX_PARAMETERS,
    MAX_WINDOW,
    check_spec,
)
from minicnn.server import ModelStore
from minicnn.server.api import MAX_BATCH_VALUES, check_batch, check_cap, check_input_size, explain_options
from minicnn.server.hosts import is_loopback, origin_of, parse_host
from minicnn.util.checks import MAX_SEED, check_count, check_real, check_seed
from minicnn.util.files import NAME_MAX, PATH_MAX, check_folder, check_name, check_regular_file, read_regular_file

# ---------------------------------------------------------------- seeds, counts, numbers

def test_a_seed_is_an_integer_from_0_to_2_to_the_64_minus_1():
    assert check_seed(0) == 0 and check_seed(MAX_SEED) == 2**64 - 1
    for bad in (-1, 2**64, True, 1.0, "3"):
        with pytest.raises(InputError, match="seed must be an integer"):
            check_seed(bad)


def test_a_count_is_an_integer_between_its_bounds_inclusive():
    assert check_count(1, "n") == 1 and check_count(5, "n", low=2, high=5) == 5
    for bad, kw in ((0, {}), (6, {"high": 5}), (True, {}), (2.0, {})):
        with pytest.raises(InputError, match="n must be an integer"):
            check_count(bad, "n", **kw)


def test_a_real_is_finite_and_within_its_bounds():
    assert check_real(0.0, "x") == 0.0 and check_real(2, "x", high=2.0) == 2.0
    assert check_real(1e-9, "x", low_open=True) == 1e-9
    for bad, kw in ((math.inf, {}), (math.nan, {}), (0.0, {"low_open": True}), (-1e-9, {}), (True, {})):
        with pytest.raises(InputError, match="x must be a number"):
            check_real(bad, "x", **kw)


# ---------------------------------------------------------------- files and names

def test_only_a_regular_file_within_its_bound_is_read(tmp_path):
    f = tmp_path / "four"
    f.write_bytes(b"abcd")
    assert check_regular_file(f, 4) == f and read_regular_file(f, 4) == b"abcd"
    with pytest.raises(InputError, match="5 bytes, over the limit of 4"):
        f.write_bytes(b"abcde")
        read_regular_file(f, 4)
    with pytest.raises(InputError, match="is a folder, not a file"):
        check_regular_file(tmp_path, None)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        check_regular_file(fifo, None)


def test_a_file_that_grows_after_its_check_is_refused_while_reading(tmp_path, monkeypatch):
    import minicnn.util.files as files
    f = tmp_path / "grows"
    f.write_bytes(b"abcde")
    monkeypatch.setattr(files, "check_regular_file", lambda path, *a: path)   # as if checked at 4 bytes
    with pytest.raises(InputError, match="larger than the limit of 4 bytes"):
        files.read_regular_file(f, 4)


def test_names_up_to_the_system_limits_pass_and_one_byte_more_is_refused():
    assert check_name("a" * NAME_MAX).name == "a" * NAME_MAX
    path = "/" + "/".join(["a" * 255] * 16)                    # 1 + 16 * 255 + 15 = 4096 bytes
    assert len(check_name(path).as_posix()) == PATH_MAX
    with pytest.raises(InputError, match="over the system's limit of 4096"):
        check_name("/" + path)
    with pytest.raises(InputError, match="over the file system's limit of 255"):
        check_name("a" * (NAME_MAX + 1))
    with pytest.raises(InputError, match="NUL byte"):
        check_name("a\0b")


def test_a_folder_is_a_folder(tmp_path):
    assert check_folder(tmp_path) == tmp_path
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is not a folder"):
        check_folder(tmp_path / "file")


# ---------------------------------------------------------------- the weights file's layer checks

def seq(*layers):
    return {"type": "Sequential", "children": [[f"l{i}", layer] for i, layer in enumerate(layers)]}


def conv(c_in, c_out, k, **kw):
    return {"type": "Conv2d", "in_channels": c_in, "out_channels": c_out, "kernel_size": k, **kw}


FLAT = {"type": "Flatten"}


def refused(spec, input_size=None, match=""):
    with pytest.raises(WeightsError, match=match):
        check_spec(spec, input_size)


def test_integer_fields_take_their_largest_value_and_not_one_more():
    assert check_spec(seq(conv(MAX_CHANNELS, 1, 1), FLAT), (MAX_CHANNELS, 1, 1)).shape == (1,)
    refused(seq(conv(MAX_CHANNELS + 1, 1, 1), FLAT), (MAX_CHANNELS + 1, 1, 1), "in_channels must be an integer")
    # a kernel as large as the input leaves one position: (64 - 64) // 1 + 1
    assert check_spec(seq(conv(1, 1, MAX_WINDOW), FLAT), (1, 64, 64)).shape == (1,)
    refused(seq(conv(1, 1, MAX_WINDOW + 1), FLAT), (1, 65, 65), "kernel_size must be an integer")
    refused(seq(conv(1, 1, [3]), FLAT), (1, 8, 8), r"kernel_size must be an integer or \[h, w\]")
    refused(seq(conv(1, 1, 3, bias=1), FLAT), (1, 8, 8), "bias must be true or false")
    refused(seq(conv(1, 1, 3, kernel=3), FLAT), (1, 8, 8), "has no field 'kernel'")


def test_a_dilated_kernel_reaches_d_times_k_minus_1_plus_1_pixels():
    # k = 3, d = 2 spans 5 pixels: on 5x5 one position, on 4x4 none
    assert check_spec(seq(conv(1, 1, 3, dilation=2), FLAT), (1, 5, 5)).shape == (1,)
    refused(seq(conv(1, 1, 3, dilation=2), FLAT), (1, 4, 4), "spans 5 but the padded input height is 4")


def test_batchnorm_eps_is_above_0_and_groups_divide_both_channel_counts():
    bn = {"type": "BatchNorm2d", "num_features": 1}
    assert check_spec(seq(dict(bn, eps=1.0), FLAT), (1, 1, 1)).shape == (1,)
    refused(seq(dict(bn, eps=0), FLAT), (1, 1, 1), r"eps must be a number in \(0, 1\]")
    assert check_spec(seq(conv(4, 8, 1, groups=4), FLAT), (4, 1, 1)).shape == (8,)
    refused(seq(conv(4, 6, 1, groups=4), FLAT), (4, 1, 1), "groups 4 must divide")


def test_pool_padding_is_at_most_half_the_kernel():
    pool = {"type": "MaxPool2d", "kernel_size": 2, "stride": 2}
    assert check_spec(seq(dict(pool, padding=1), FLAT), (1, 4, 4)).shape == (9,)      # (4 + 2 - 2) // 2 + 1 = 3
    refused(seq({"type": "MaxPool2d", "kernel_size": 3, "padding": 2}, FLAT), (1, 4, 4), "at most half the kernel")


def test_the_option_a_shortcut_counts_both_sides_of_its_padding():
    pad = {"type": "OptionAShortcut", "pad_channels": 20000, "stride": 1}
    pool = {"type": "AdaptiveAvgPool2d", "output_size": 1}
    assert check_spec(seq(dict(pad, pad_channels=0), pool, FLAT), (30000, 1, 1)).shape == (30000,)
    refused(seq(pad, pool, FLAT), (30000, 1, 1), "makes 70000 channels")   # 30000 + 2 * 20000


def test_the_logits_may_number_max_classes():
    linear = {"type": "Linear", "in_features": 1, "out_features": MAX_CLASSES}
    assert check_spec(seq(linear), (1,)).shape == (MAX_CLASSES,)
    refused(seq(dict(linear, out_features=MAX_CLASSES + 1)), (1,), "over the limit of 65,536 classes")


def test_the_layer_and_depth_caps_hold_exactly():
    relu = {"type": "ReLU"}
    assert check_spec(seq(*[relu] * (MAX_LAYERS - 2), FLAT)).modules == MAX_LAYERS   # the Sequential counts too
    refused(seq(*[relu] * (MAX_LAYERS - 1), FLAT), None, f"more than {MAX_LAYERS} layers")
    deep = FLAT
    for _ in range(MAX_DEPTH):                                 # the Flatten at depth 32
        deep = seq(deep)
    check_spec(deep)
    refused(seq(deep), None, f"nested more than {MAX_DEPTH} deep")


def test_the_parameter_cap_holds_exactly():
    side = 2**14                                               # 2**14 * 2**14 = 2**28 weights
    linear = {"type": "Linear", "in_features": side, "out_features": side, "bias": False}
    assert check_spec(seq(linear), (side,)).parameters == MAX_PARAMETERS
    refused(seq(dict(linear, bias=True)), (side,), "more than 268,435,456 weights")


def test_one_output_may_hold_max_elements_and_all_outputs_together_max_kept():
    relu, pool = {"type": "ReLU"}, {"type": "AdaptiveAvgPool2d", "output_size": 1}
    size = (2, 8192, 8192)                                     # 2**27 numbers
    assert check_spec(seq(relu, pool, FLAT), size).kept == MAX_ELEMENTS + 2 + 2
    refused(seq(relu, pool, FLAT), (2, 8192, 8193), "numbers per image, over the limit of 134,217,728")
    # three outputs of 2**27: 3 * 2**27 > 2**28 kept for the backward
    refused(seq(relu, relu, relu, pool, FLAT), size, "the outputs up to this layer hold 402,653,184")


# ---------------------------------------------------------------- the server's Host and Origin rules

def test_hosts_and_origins_are_parsed_strictly():
    assert parse_host("localhost") == ("localhost", 80)
    assert parse_host("[::1]:65535") == ("::1", 65535)
    assert parse_host("localhost:65536") is None
    assert is_loopback("localhost") and is_loopback("a.localhost") and is_loopback("127.0.0.2")
    assert not is_loopback("evillocalhost") and not is_loopback("evil.example")
    assert origin_of("http://Localhost:8000") == ("http", "localhost", 8000)
    assert origin_of("http://user@localhost:8000") is None


@pytest.fixture(scope="module")
def small_server():
    with running(ModelStore(workers=1), max_upload=10) as server:
        yield server


def send(server, method, path, headers, body=None, error=False):
    """The status of one request whose headers are sent as given (repeated names allowed);
    with ``error``, (status, the JSON answer's error)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=60)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for k, v in headers:
            conn.putheader(k, v)
        conn.endheaders(body)
        r = conn.getresponse()
        answer = r.read()
        return (r.status, json.loads(answer)["error"]) if error else r.status
    finally:
        conn.close()


def test_the_host_rule(small_server):
    port = small_server.server_address[1]
    own = ("Host", f"127.0.0.1:{port}")
    assert send(small_server, "GET", "/api/methods", [own]) == 200
    assert send(small_server, "GET", "/api/methods", [("Host", f"evil.example:{port}")]) == 403
    assert send(small_server, "GET", "/api/methods", [own, own]) == 400


def test_the_origin_rule_reads_every_origin_and_else_the_referer(small_server):
    port = small_server.server_address[1]
    own, foreign = f"http://127.0.0.1:{port}", "http://evil.example"
    head = [("Host", f"127.0.0.1:{port}"), ("Content-Length", "3")]
    def post(extra):
        return send(small_server, "POST", "/api/explain", head + extra, b"abc")
    assert post([("Origin", own)]) == 400                      # the origin passes; "abc" is no image
    assert post([("Origin", foreign)]) == 403
    assert post([("Origin", own), ("Origin", foreign)]) == 403
    assert post([("Referer", foreign + "/page")]) == 403


def test_content_length_is_one_number_and_at_most_the_upload_limit(small_server):
    host = ("Host", f"127.0.0.1:{small_server.server_address[1]}")
    def post(lengths, body):
        return send(small_server, "POST", "/api/explain", [host, *(("Content-Length", n) for n in lengths)], body)
    assert post(["10"], b"0123456789") == 400                  # at the limit: read, then not an image
    assert post(["11"], b"0123456789a") == 413
    status, message = send(small_server, "POST", "/api/explain", [host, ("Content-Length", "3"),
                                                                  ("Content-Length", "3")], b"abc", error=True)
    assert status == 400 and "2 Content-Length headers" in message
    assert post(["3abc"], b"abc") == 400


# ---------------------------------------------------------------- the caps on request costs

def test_each_capped_option_takes_1_to_its_cap_and_a_seed_0_to_2_to_the_32_minus_1():
    check_cap("steps", 512)
    check_cap("samples", 1)
    check_cap("seed", 2**32 - 1)
    for param, value in (("steps", 513), ("samples", 0), ("seed", 2**32), ("seed", -1), ("epsilon", math.nan)):
        with pytest.raises(InputError, match=param):
            check_cap(param, value)


def test_smoothgrad_over_integrated_gradients_counts_its_52_passes_per_sample():
    assert explain_options({"samples": "9", "base": "integrated-gradients"})["samples"] == 9    # 468 passes
    with pytest.raises(InputError, match="makes 520 passes"):
        explain_options({"samples": "10", "base": "integrated-gradients"})


def test_a_pass_holds_at_most_max_batch_values_and_an_input_16_times_the_models_pixels():
    x = np.zeros((1, 2, 32, 32), np.float32)                   # 2048 values: 1024 copies make 2**21
    check_batch({"batch_size": MAX_BATCH_VALUES // 2048}, x)
    with pytest.raises(InputError, match="batch_size <= 1024"):
        check_batch({"batch_size": 1025}, x)
    model = SimpleNamespace(input_size=(3, 32, 32), name="m")
    check_input_size(model, np.zeros((1, 3, 32, 512)))         # 16 times 32x32
    with pytest.raises(InputError, match="more than 16 times"):
        check_input_size(model, np.zeros((1, 3, 32, 513)))


# ---------------------------------------------------------------- estimates

def test_the_passes_of_each_method_by_hand():
    # occlusion on 32x64: patch 8, stride 2: 13 x 29 positions, and the unoccluded image
    assert passes("occlusion", None, (32, 64)) == (1 + 13 * 29, 0)
    assert passes("integrated-gradients", None, (8, 8), options={"steps": 7}) == (9, 7)
    # 3 noisy copies, each Integrated Gradients at its 50 steps: 52 forwards and 50 backwards
    assert passes("smoothgrad", None, (8, 8), options={"samples": 3, "base": "integrated-gradients"}) == (157, 150)
    assert passes("lrp-epsilon-plus", None, (8, 8)) == (4, 0)


def test_a_resumed_forward_costs_the_share_of_the_layers_after_the_layer():
    model = SimpleNamespace(layer_names=["a", "b", "b.c", "d"])
    assert share_after(model, "b") == 1 / 4                    # "d" only
    assert share_after(model, "d") == 1 / 4                    # none after: at least one


def test_seconds_are_passes_times_pass_times_scaled_by_the_pixels():
    model = SimpleNamespace(input_size=(3, 8, 8))
    times = (1.0, 2.0, 10.0, 20.0)                             # one image: 1 s, 2 s; batched: 10 s, 20 s
    assert estimate_seconds("saliency", model, (8, 16), times) == 2 * (1 + 2)
    assert estimate_seconds("integrated-gradients", model, (8, 8), times, options={"steps": 1}) == 3 * 10 + 20


# ---------------------------------------------------------------- the LRP relevance budget

def test_the_relevance_budget_by_hand():
    # totals at the outputs of a, b, c: -6, -3, 2 (= y^c); 1 reaches the input
    b = relevance_budget(["a", "b", "c"], np.array([[-6.0, -3.0, 2.0]]), np.array([1.0]))
    assert b.absorbed.tolist() == [[-7.0, 3.0, 5.0]] and b.start.tolist() == [2.0]
    assert b.fraction_at_input.tolist() == [0.5] and b.shares.tolist() == [[-3.5, 1.5, 2.5]]
    assert b.largest(0, 3) == [("a", -3.5), ("c", 2.5), ("b", 1.5)]
    assert b.summary(0, 1) == "relevance at the input = 0.5 of y^c = 2; the biases took: a -350%"


# ---------------------------------------------------------------- class names

CLASSES = ["tabby, tabby cat", "tiger cat", "Persian cat", "Cat", "catamaran", "Boston bull, Boston terrier",
           "crane", "crane"]


# "cat" is class 3's name "Cat" in another case, and begins "catamaran" too: no prefix rule can find it
@pytest.mark.parametrize("name, index", [("Cat", 3), ("cat", 3), ("tabby cat", 0), ("TABBY", 0), (" tiger cat ", 1),
                                         ("Persian", 2), ("cata", 4), ("boston ter", 5), ("Boston", 5),
                                         ("3", 3)])
def test_a_class_by_its_label_a_synonym_an_index_or_a_unique_beginning(name, index):
    assert class_index(SimpleNamespace(classes=CLASSES), name) == index


@pytest.mark.parametrize("name, message", [("ca", "begins the names of 2 classes"), ("crane", "is shared by 2"),
                                           ("8", "out of range"), ("-1", "out of range")])
def test_an_ambiguous_or_out_of_range_name_is_refused(name, message):
    with pytest.raises(InputError, match=message):
        class_index(SimpleNamespace(classes=CLASSES), name)
