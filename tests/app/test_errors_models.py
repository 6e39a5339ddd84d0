"""Bad models, layers and targets, end to end: the command line and the API both refuse them in one line,
with a suggestion where one is close. The table's rows and their check are in ``refusals.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from refusals import CAT, Case, check_refusal, explain_argv, params

import minicnn
from minicnn import explain
from minicnn.errors import InputError, UnknownNameError
from minicnn.explain.target import class_index
from minicnn.inputs.images import load_image
from minicnn.inputs.preprocess import preprocess

# ================================================================ model, layer and target

def cat_batch(model):
    return preprocess(load_image(CAT), model.meta["preprocessing"])


def _cli_and_api(argv_extra, api, model="vgg_cifar10"):
    def make(tmp, _):
        return explain_argv(CAT, tmp, *argv_extra, model=model), api
    return make


def _api_gradcam(model_name, **kw):
    def api():
        m = minicnn.load(model_name)
        return explain.gradcam(m, cat_batch(m), **kw)
    return api


def _api_cam():
    m = minicnn.load("vgg_cifar10")
    return explain.cam(m, cat_batch(m))


def test_gradcam_on_an_input_too_small_for_the_layer():
    # The CLI resizes every image to CIFAR scale first (a 1x1 photo becomes 32x32),
    # so only an array given to the API can be this small.
    model = minicnn.load("resnet20_cifar10")
    with pytest.raises(InputError, match=r"layer 'layer3' outputs shape \(64, 1, 1\).*use a larger image") as info:
        explain.gradcam(model, np.zeros((1, 3, 4, 4), np.float32))
    assert "\n" not in str(info.value)


MODEL_REFUSALS = [
    Case("unknown-model-layers", lambda tmp, _: (["layers", "--model", "resnet21_cifar10"],
                                                 lambda: minicnn.load("resnet21_cifar10")),
         UnknownNameError, ("unknown model 'resnet21_cifar10'; did you mean 'resnet20_cifar10'?",
                            "valid models: mobilenet_v2, resnet20_cifar10, vgg_cifar10")),
    Case("unknown-model-explain", _cli_and_api([], lambda: minicnn.load("vgg"), model="vgg"), UnknownNameError,
         ("unknown model 'vgg'", "valid models: mobilenet_v2, resnet20_cifar10, vgg_cifar10")),
    Case("unknown-model-evaluate", lambda tmp, _: (["evaluate", "--model", "alexnet", "--data", tmp],
                                                   lambda: minicnn.load("alexnet")),
         UnknownNameError, ("unknown model 'alexnet'", "valid models: mobilenet_v2, resnet20_cifar10, vgg_cifar10")),
    Case("unknown-layer", _cli_and_api(["--layer", "features.99"], _api_gradcam("vgg_cifar10", layer="features.99")),
         UnknownNameError, ("unknown layer 'features.99'; did you mean 'features.9'?",
                            "valid layers: features, features.0, features.2", "(22 in all)")),
    Case("unknown-layer-resnet", _cli_and_api(["--layer", "layer4"], _api_gradcam("resnet20_cifar10", layer="layer4"),
                                              model="resnet20_cifar10"),
         UnknownNameError, ("unknown layer 'layer4'; did you mean 'layer3'?", "valid layers: conv1, bn1, relu")),
    Case("unknown-class", _cli_and_api(["--target", "kat"], lambda: class_index(minicnn.load("vgg_cifar10"), "kat")),
         UnknownNameError, ("unknown class 'kat'; did you mean 'cat'?", "valid classes: airplane, automobile")),
    Case("unknown-class-no-match", _cli_and_api(["--target", "zebra"], _api_gradcam("vgg_cifar10", target="zebra")),
         UnknownNameError, ("unknown class 'zebra'; valid classes: airplane, automobile, bird",)),
    Case("target-too-large", _cli_and_api(["--target", "10"], _api_gradcam("vgg_cifar10", target=10)), InputError,
         ("target class 10 is out of range; this model has classes 0..9",)),
    Case("target-negative", _cli_and_api(["--target", "-1"], _api_gradcam("vgg_cifar10", target=-1)), InputError,
         ("target class -1 is out of range; this model has classes 0..9",)),
    Case("gradcam-of-dense-layer", _cli_and_api(["--layer", "classifier.0"],
                                                _api_gradcam("vgg_cifar10", layer="classifier.0")),
         InputError, ("Grad-CAM needs a convolutional feature map (N, K, h, w) with spatial extent",
                      "layer 'classifier.0' outputs shape (256,)", "try 'features.19'")),
    Case("gradcam-of-pooled-layer", _cli_and_api(["--layer", "avgpool"],
                                                 _api_gradcam("resnet20_cifar10", layer="avgpool"),
                                                 model="resnet20_cifar10"),
         InputError, ("layer 'avgpool' outputs shape (64, 1, 1)", "try 'layer3'")),
    Case("cam-without-global-pooling", _cli_and_api(["--method", "cam"], _api_cam), InputError,
         ("CAM needs a network that ends in global average pooling", "use Grad-CAM")),
]


@pytest.mark.parametrize("case", params(MODEL_REFUSALS))
def test_model_layer_and_target_refused(case, tmp_path, monkeypatch, capsys):
    check_refusal(case, tmp_path, monkeypatch, capsys)
