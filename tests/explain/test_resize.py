"""Bilinear resizing: known answers, PyTorch's values, and invariants."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn.errors import InputError
from minicnn.explain.resize import interpolation_matrix, resize_bilinear, resize_bilinear_reference, source_coordinates

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "resize_torch.npz"

M = np.array([[0.0, 1.0], [2.0, 3.0]])


def test_known_answer_2x2_to_4x4_half_pixel():
    # src = (d + 0.5) * 2/4 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (-> last pixel)
    # so each axis mixes as [x0, .75 x0 + .25 x1, .25 x0 + .75 x1, x1]
    expected = np.array([
        [0.0, 0.25, 0.75, 1.0],
        [0.5, 0.75, 1.25, 1.5],
        [1.5, 1.75, 2.25, 2.5],
        [2.0, 2.25, 2.75, 3.0],
    ])
    np.testing.assert_allclose(resize_bilinear(M, (4, 4)), expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(resize_bilinear_reference(M, (4, 4)), expected, rtol=0, atol=1e-15)


def test_known_answer_2x2_to_4x4_align_corners():
    # src = d * (2 - 1) / (4 - 1) = d / 3, so out[i, j] = 2 i / 3 + j / 3
    i, j = np.mgrid[0:4, 0:4]
    expected = 2 * i / 3 + j / 3
    np.testing.assert_allclose(resize_bilinear(M, (4, 4), align_corners=True), expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(resize_bilinear_reference(M, (4, 4), align_corners=True), expected, atol=1e-15)


def test_source_coordinates_formula():
    np.testing.assert_allclose(source_coordinates(2, 4), [0.0, 0.25, 0.75, 1.25])
    np.testing.assert_allclose(source_coordinates(7, 224)[:2], [0.0, 0.0])  # (0.5 * 7/224 - 0.5) < 0
    np.testing.assert_allclose(source_coordinates(7, 224)[-1], (223.5) * 7 / 224 - 0.5)
    np.testing.assert_allclose(source_coordinates(2, 4, align_corners=True), [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(source_coordinates(5, 1, align_corners=True), [0.0])


def test_interpolation_matrix_rows_sum_to_one():
    for n_in, n_out in [(7, 224), (8, 32), (5, 13), (17, 6), (1, 4), (4, 1)]:
        for align in (False, True):
            a = interpolation_matrix(n_in, n_out, align_corners=align)
            assert a.shape == (n_out, n_in)
            np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=1e-15)
            assert ((a != 0).sum(axis=1) <= 2).all()


def _torch_cases():
    with np.load(FIXTURE, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    return [(data[f"case{k}_input"], tuple(int(s) for s in data[f"case{k}_size"]),
             data[f"case{k}_align_false"], data[f"case{k}_align_true"]) for k in range(int(data["cases"]))]


@pytest.mark.parametrize("case", _torch_cases(), ids=lambda c: f"{c[0].shape[2:]}->{c[1]}")
def test_matches_pytorch_recording(case):
    x, size, want_false, want_true = case
    np.testing.assert_allclose(resize_bilinear(x, size), want_false, rtol=0, atol=1e-6)
    np.testing.assert_allclose(resize_bilinear(x, size, align_corners=True), want_true, rtol=0, atol=1e-6)


def test_fixture_covers_the_gradcam_sizes():
    sizes = {(c[0].shape[2:], c[1]) for c in _torch_cases()}
    assert {((7, 7), (224, 224)), ((8, 8), (32, 32)), ((8, 16), (32, 64))} <= sizes
    assert any(c[0].shape[2] > c[1][0] for c in _torch_cases())  # a downsample


small = st.integers(1, 9)


@settings(max_examples=40, deadline=None)
@given(h=small, w=small, out_h=st.integers(1, 20), out_w=st.integers(1, 20), align=st.booleans(),
       lead=st.sampled_from([(), (2,), (1, 3)]), seed=st.integers(0, 2**32 - 1))
def test_fast_equals_reference(h, w, out_h, out_w, align, lead, seed):
    x = np.random.default_rng(seed).standard_normal(lead + (h, w))
    fast = resize_bilinear(x, (out_h, out_w), align_corners=align)
    ref = resize_bilinear_reference(x, (out_h, out_w), align_corners=align)
    assert fast.shape == lead + (out_h, out_w)
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(h=small, w=small, out_h=st.integers(1, 30), out_w=st.integers(1, 30), align=st.booleans(),
       c=st.floats(-1e3, 1e3))
def test_constant_map_stays_constant(h, w, out_h, out_w, align, c):
    y = resize_bilinear(np.full((h, w), c), (out_h, out_w), align_corners=align)
    np.testing.assert_allclose(y, c, rtol=1e-12, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(h=st.integers(2, 9), w=st.integers(2, 9), out_h=st.integers(2, 30), out_w=st.integers(2, 30),
       a=st.floats(-10, 10), b=st.floats(-10, 10), c=st.floats(-10, 10))
def test_linear_ramp_stays_linear_align_corners(h, w, out_h, out_w, a, b, c):
    i, j = np.mgrid[0:h, 0:w]
    y = resize_bilinear(a * i + b * j + c, (out_h, out_w), align_corners=True)
    oi, oj = np.mgrid[0:out_h, 0:out_w]
    expected = a * oi * (h - 1) / (out_h - 1) + b * oj * (w - 1) / (out_w - 1) + c
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-9)


def test_linear_ramp_stays_linear_inside_half_pixel():
    # away from the clamped borders, half-pixel sampling of a ramp is the ramp at src
    h, w, out_h, out_w = 6, 5, 24, 20
    i, j = np.mgrid[0:h, 0:w]
    y = resize_bilinear(3.0 * i - 2.0 * j + 1.0, (out_h, out_w))
    si = source_coordinates(h, out_h)
    sj = source_coordinates(w, out_w)
    inside_i = (si > 0) & (si < h - 1)
    inside_j = (sj > 0) & (sj < w - 1)
    expected = 3.0 * si[:, None] - 2.0 * sj[None, :] + 1.0
    np.testing.assert_allclose(y[np.ix_(inside_i, inside_j)], expected[np.ix_(inside_i, inside_j)], atol=1e-12)


def test_same_size_is_identity_and_dtype_kept():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 7)).astype(np.float32)
    y = resize_bilinear(x, (5, 7))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x)
    assert resize_bilinear(x.astype(np.float64), 10).dtype == np.float64
    assert resize_bilinear(x, 10).shape == (2, 3, 10, 10)


def test_float32_close_to_float64():
    x = np.random.default_rng(1).standard_normal((7, 7))
    y32 = resize_bilinear(x.astype(np.float32), (224, 224))
    np.testing.assert_allclose(y32, resize_bilinear(x, (224, 224)), atol=1e-5)


def test_integer_input_becomes_float64():
    y = resize_bilinear(np.arange(4).reshape(2, 2), (4, 4), align_corners=True)
    assert y.dtype == np.float64


@pytest.mark.parametrize("maps, size", [
    (np.zeros(4), (2, 2)),
    (np.zeros((0, 3)), (2, 2)),
    (np.zeros((2, 2)), (0, 2)),
    (np.zeros((2, 2)), (2, -1)),
    (np.zeros((2, 2)), (2, 2.5)),
    (np.zeros((2, 2)), (2, 2, 2)),
    (np.zeros((2, 2)), "big"),
    (np.array([["a", "b"], ["c", "d"]]), (2, 2)),
])
def test_bad_input_is_one_line_input_error(maps, size):
    with pytest.raises(InputError) as e:
        resize_bilinear(maps, size)
    assert "\n" not in str(e.value)
