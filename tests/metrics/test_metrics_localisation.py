"""Pointing games on mosaics, the baselines, agreement with occlusion, pixel maps and pass counting."""

import numpy as np
import pytest
from test_explain_helpers import small_cnn

from minicnn import explain
from minicnn.errors import InputError
from minicnn.explain import registry
from minicnn.explain.resize import resize_bilinear
from minicnn.metrics.agreement import occlusion_spearman
from minicnn.metrics.baselines import baseline_maps, centre_map, edge_map, random_map
from minicnn.metrics.cost import counting_passes
from minicnn.metrics.localisation import choose_mosaics, energy_pointing_game, mosaic, pointing_game, tile_mask
from minicnn.metrics.maps import pixel_map


def test_mosaic_puts_tiles_zero_to_three_in_reading_order():
    tiles = [np.full((1, 2, 3), float(i)) for i in range(4)]
    m = mosaic(tiles)
    assert m.shape == (1, 4, 6)
    assert m[0, :, :].tolist() == [[0, 0, 0, 1, 1, 1]] * 2 + [[2, 2, 2, 3, 3, 3]] * 2
    assert tile_mask((4, 6), 3).sum() == 6 and tile_mask((4, 6), 3)[3, 5] and not tile_mask((4, 6), 3)[0, 0]
    assert (mosaic(tiles)[0][tile_mask((4, 6), 1)] == 1).all()


def test_a_map_equal_to_the_tile_mask_scores_one_in_both_games():
    for tile in range(4):
        mask = tile_mask((8, 8), tile)
        assert pointing_game(mask.astype(float), mask) == 1.0
        assert energy_pointing_game(mask.astype(float), mask) == 1.0
        assert pointing_game(~mask * 1.0, mask) == 0.0 and energy_pointing_game(~mask * 1.0, mask) == 0.0


def test_the_documented_tie_rules():
    mask = tile_mask((8, 8), 0)
    # a constant map: every pixel is a maximum, a quarter of them in the tile: chance, 1/4
    assert pointing_game(np.ones((8, 8)), mask) == 0.25
    assert energy_pointing_game(np.ones((8, 8)), mask) == 0.25
    # two tied maxima, one inside: a half
    m = np.zeros((8, 8))
    m[0, 0] = m[7, 7] = 5.0
    assert pointing_game(m, mask) == 0.5
    # no positive mass at all: the tile's share; negative values never count
    assert energy_pointing_game(-np.ones((8, 8)), mask) == 0.25
    m = -np.ones((8, 8))
    m[0, 0], m[7, 7] = 3.0, 1.0
    assert energy_pointing_game(m, mask) == pytest.approx(0.75)
    with pytest.raises(InputError, match="same"):
        pointing_game(np.zeros((4, 4)), mask)


def test_choose_mosaics_takes_four_classes_classified_correctly_and_cycles_the_target_tile():
    labels = np.repeat(np.arange(10), 6)
    predictions = labels.copy()
    predictions[::5] = (labels[::5] + 1) % 10                  # some mistakes, never used
    chosen = choose_mosaics(labels, predictions, 7, seed=3)
    assert len(chosen) == 7 and [t for _, t in chosen] == [0, 1, 2, 3, 0, 1, 2]
    used = [i for group, _ in chosen for i in group]
    assert len(used) == len(set(used))
    for group, _ in chosen:
        assert len(set(labels[list(group)])) == 4 and np.all(labels[list(group)] == predictions[list(group)])
    assert choose_mosaics(labels, predictions, 7, seed=3) == chosen
    assert len(choose_mosaics(np.array([0, 0, 1, 1, 2]), np.array([0, 0, 1, 1, 2]), 3)) == 0   # 3 classes only


def test_baselines():
    r = random_map(2, (4, 5), seed=7)
    assert r.shape == (2, 4, 5) and np.array_equal(r, random_map(2, (4, 5), seed=7)) and 0 <= r.min() < r.max() < 1
    c = centre_map(1, (8, 8))[0]
    assert np.isclose(c.max(), np.exp(-0.5 / 2 / 4)) and c[3:5, 3:5].min() == c.max()        # four central pixels tie
    assert c[0, 0] == pytest.approx(np.exp(-(3.5 ** 2 * 2) / 8))
    step = np.zeros((1, 3, 6, 6))
    step[..., 3:] = 1.0                                       # a vertical edge between columns 2 and 3
    e = edge_map(step)[0]
    assert e[:, 2:4].min() > 0 and np.all(e[:, [0, 5]] == 0)
    assert set(baseline_maps(step)) == {"random", "centre", "edges"}


def test_baselines_by_hand():
    # the random map is the seeded generator's first draws, image after image
    np.testing.assert_array_equal(random_map(2, (4, 5), seed=7), np.random.default_rng(7).random((2, 4, 5)))
    np.testing.assert_array_equal(baseline_maps(np.zeros((2, 3, 4, 5)), seed=9)["random"],
                                  np.random.default_rng(9).random((2, 4, 5)))
    # edges of a ramp in one channel: grey = j / 3; inside, Sobel along the columns is
    # (1 + 2 + 1) * ((j + 1) - (j - 1)) / 3 = 8/3, along the rows 0; at the borders the mirror
    # (x[-1] = x[1]) makes the difference 0
    x = np.zeros((1, 3, 5, 6))
    x[0, 0] = np.arange(6.0)
    np.testing.assert_allclose(edge_map(x)[0], np.tile([0, 8 / 3, 8 / 3, 8 / 3, 8 / 3, 0], (5, 1)), atol=1e-12)
    # a ramp down the rows and along the columns at once: hypot of the two derivatives, 8/3 * sqrt(1 + 4)
    r, c = np.mgrid[0:5, 0:6]
    x = np.broadcast_to((2.0 * r + c)[None, None], (1, 3, 5, 6))
    assert edge_map(x)[0, 2, 2] == pytest.approx(8 * np.sqrt(5.0), rel=1e-12)
    assert edge_map(x)[0, 0, 2] == pytest.approx(8.0, rel=1e-12)                  # the row derivative mirrored to 0
    # each image's edges are its own: a blank image beside the ramp has none, and the ramp's are unchanged
    both = edge_map(np.concatenate([np.zeros((1, 3, 5, 6)), x, np.zeros((1, 3, 5, 6))]))
    assert np.all(both[[0, 2]] == 0)
    np.testing.assert_allclose(both[1], edge_map(x)[0], rtol=1e-12)


def test_choose_mosaics_follows_its_seed():
    labels = np.repeat(np.arange(10), 6)
    a, b = choose_mosaics(labels, labels, 5, seed=3), choose_mosaics(labels, labels, 5, seed=4)
    assert a != b
    pool = np.random.default_rng(4).permutation(60)            # all correct: the first four of distinct classes
    first, seen = [], set()
    for i in pool:
        if labels[i] not in seen and len(first) < 4:
            first.append(int(i))
            seen.add(labels[i])
    assert b[0] == (tuple(first), 0)


def test_pixel_maps_follow_the_documented_rule(rng):
    layer = rng.standard_normal((2, 4, 4))
    np.testing.assert_allclose(pixel_map(layer, "layer", (8, 8)), resize_bilinear(layer, (8, 8)))
    g = rng.standard_normal((2, 3, 8, 8))
    np.testing.assert_allclose(pixel_map(g, "input", (8, 8)), np.abs(g).sum(axis=1))
    np.testing.assert_allclose(pixel_map(g, "input", (8, 8), channels="sum"), g.sum(axis=1))
    np.testing.assert_allclose(pixel_map(g[:, 0], "pixels", (8, 8)), g[:, 0])
    with pytest.raises(InputError, match="cannot have shape"):
        pixel_map(g, "pixels", (8, 8))
    with pytest.raises(InputError, match="channels"):
        pixel_map(g, "input", (8, 8), channels="max")


def test_agreement_with_occlusion_is_the_signed_rank_correlation_by_hand():
    # m ranks its four pixels 1 2 3 4; o = (-4, 1, 2, -3) ranks them 1 3 4 2: centred ranks (-1.5, -.5, .5, 1.5)
    # and (-1.5, .5, 1.5, -.5), dot 2, norms sqrt(5) each: rho = 0.4 (of |o|, ranks 4 1 2 3, it would be -0.05)
    m = np.array([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 0.0], [7.0, 1.0]]])
    o = np.array([[[-4.0, 1.0], [2.0, -3.0]], [[-4.0, 1.0], [2.0, -3.0]]])
    # image 1: m ranks 3 1 4 2, o ranks 1 3 4 2: centred (.5, -1.5, 1.5, -.5), (-1.5, .5, 1.5, -.5): dot 1, rho 0.2
    np.testing.assert_allclose(occlusion_spearman(m, o), [0.4, 0.2], rtol=1e-12)
    np.testing.assert_allclose(occlusion_spearman(o, o), 1.0)


def test_passes_are_counted_per_image_and_the_model_is_left_as_it_was():
    model = small_cnn(0)
    x = np.random.default_rng(0).standard_normal((5, 3, 8, 8))
    with counting_passes(model) as gradcam_passes:
        registry.get("gradcam").run(model, x)
    assert (gradcam_passes.forwards, gradcam_passes.backwards) == (5, 5)
    with counting_passes(model) as outer:
        with counting_passes(model) as inner:
            explain.guided_gradcam(model, x[:2])
        model.forward(x)
    assert (inner.forwards, inner.backwards) == (4, 4) and (outer.forwards, outer.backwards) == (9, 4)
    with counting_passes(model) as occ:
        explain.occlusion(model, x[:1], size=4, stride=4)
    assert occ.forwards == 1 + 4 and occ.total == 5
    assert not {"forward", "backward", "forward_from"} & set(vars(model))
