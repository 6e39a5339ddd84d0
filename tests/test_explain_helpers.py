"""Small models for the explanation tests, and the shipped models.

``gap_model`` and ``dense_model`` are tiny networks whose Grad-CAM, CAM,
guided and plain gradients the tests work out by hand; ``small_cnn`` is a
random float64 network for finite differences and properties.
"""

import numpy as np

from minicnn.layers import AdaptiveAvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from minicnn.model import Model


def _model(children, classes, input_size, name="tiny"):
    return Model(Sequential(children), {"name": name, "classes": list(classes), "input_size": list(input_size)})


def gap_model():
    """x (1, 1, 2, 2) -> conv 1x1 (w = +1, -1) -> ReLU "relu" -> global average pool -> Linear W.

    A^1 = ReLU(x), A^2 = ReLU(-x); F = mean over the 2x2 pixels; y = W F with
    W = [[2, -1], [0.5, 3]] and no bias. Classes "a", "b".
    """
    conv = Conv2d(1, 2, 1, bias=False)
    conv.params["weight"] = np.array([1.0, -1.0]).reshape(2, 1, 1, 1)
    fc = Linear(2, 2, bias=False)
    fc.params["weight"] = np.array([[2.0, -1.0], [0.5, 3.0]])
    return _model([("conv", conv), ("relu", ReLU()), ("avgpool", AdaptiveAvgPool2d(1)), ("flatten", Flatten()),
                   ("fc", fc)], ["a", "b"], [1, 2, 2], "gap")


GAP_X = np.array([[1.0, -2.0], [3.0, 0.0]]).reshape(1, 1, 2, 2)


def dense_model():
    """x (1, 1, 2, 2) -> conv 1x1 (w = 1) -> ReLU "relu" -> flatten -> Linear W (2 x 4), no bias.

    y^c = sum_ij W[c, 2i + j] ReLU(x_ij), so dy^c/dA_ij = W[c, 2i + j].
    """
    conv = Conv2d(1, 1, 1, bias=False)
    conv.params["weight"] = np.ones((1, 1, 1, 1))
    fc = Linear(4, 2, bias=False)
    fc.params["weight"] = np.array([[1.0, 2.0, -1.0, 0.5], [2.0, 1.0, 1.0, -1.0]])
    return _model([("conv", conv), ("relu", ReLU()), ("flatten", Flatten()), ("fc", fc)], ["p", "q"], [1, 2, 2],
                  "dense")


DENSE_X = np.array([[1.0, -2.0], [3.0, 0.5]]).reshape(1, 1, 2, 2)


def small_cnn(seed=0, *, dense=False, classes=3, dtype=np.float64):
    """Random conv-ReLU-pool-conv-ReLU network on 3x8x8 input, ending GAP-Linear (or a dense head).

    The last feature map is "features.4" (5 x 4 x 4).
    """
    rng = np.random.default_rng(seed)
    features = Sequential([("0", Conv2d(3, 4, 3, padding=1)), ("1", ReLU()), ("2", MaxPool2d(2)),
                           ("3", Conv2d(4, 5, 3, padding=1)), ("4", ReLU())])
    if dense:
        head = [("flatten", Flatten()), ("classifier", Sequential([("0", Linear(80, 6)), ("1", ReLU()),
                                                                    ("2", Linear(6, classes))]))]
    else:
        head = [("avgpool", AdaptiveAvgPool2d(1)), ("flatten", Flatten()), ("fc", Linear(5, classes))]
    model = _model([("features", features), *head], [f"c{i}" for i in range(classes)], [3, 8, 8], "small")
    for _, layer in model.layers():
        for k, p in layer.params.items():
            layer.params[k] = (rng.standard_normal(p.shape) * (0.6 if k == "weight" else 0.2)).astype(dtype)
    return model


def shipped(name):
    """A shipped model. A checkout without its weights fails the test (one-line WeightsError), never skips."""
    import minicnn
    return minicnn.load(name)


def test_the_hand_models_compute_what_their_docstrings_say():
    y = gap_model().forward(GAP_X)
    np.testing.assert_allclose(y, [[1.5, 2.0]])        # W @ [mean ReLU(x), mean ReLU(-x)] = W @ [1, 0.5]
    y = dense_model().forward(DENSE_X)
    np.testing.assert_allclose(y, [[-1.75, 4.5]])      # W @ [1, 0, 3, 0.5]


def test_small_cnn_has_its_feature_map_where_documented():
    m = small_cnn()
    m.forward(np.zeros((2, 3, 8, 8)))
    assert m.activations["features.4"].shape == (2, 5, 4, 4)
