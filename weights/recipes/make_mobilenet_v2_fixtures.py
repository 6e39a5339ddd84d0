"""Record the references that ``mobilenet_v2`` is tested against (needs torch, tflite, ai-edge-litert).

Usage (from the repository root, with the reference environment)::

    PYTHONPATH=. /work/refenv213/bin/python weights/recipes/make_mobilenet_v2_fixtures.py \\
        ../shared/checkpoints/mobilenet_v2_1.0_224_quant.tflite

Two references, both independent of minicnn's layers:

- **A PyTorch twin** built here from the TensorFlow Lite file itself: the
  operators in the file's order, each CONV_2D / DEPTHWISE_CONV_2D as
  ``F.conv2d`` (``groups`` = channels for depthwise) after ``F.pad`` with
  TensorFlow's SAME amounts for its input size, the fused ReLU6 as
  ``clamp(0, 6)`` (``F.relu6``, whose backward is PyTorch's), ADD, the global
  average pool as a mean, the 1x1 classifier convolution. Its weights are
  dequantised here, w = scale * (q - zero_point) in float64 rounded to float32,
  and checked to be bit for bit the arrays ``minicnn.load("mobilenet_v2")`` holds.
- **The TensorFlow Lite interpreter** (ai-edge-litert), on the uint8 image
  (the same 224x224 resize as minicnn's preprocessing): its top-1 and its
  uint8 output scores.

Written:

``tests/fixtures/mobilenet_v2_torch.npz``, in the format of ``make_fixtures.py``
(``tests/models/test_fixtures.py`` reads it): case "chelsea" (the shipped photo,
preprocessed by the model's own description: logits, top-1, the pooled
features and their gradient), case "random64" (one N(0, 1) input of 64x64: logits,
top-1, dy^c/dx, and the activations and gradients at ``features.6`` and
``features``).

``tests/fixtures/mobilenet_v2_tflite.npz``: for the shipped photos ``photos``
(file names), the twin's ``logits`` (P, 1001), the interpreter's
``interpreter_top1`` (P,) and ``interpreter_scores`` (P, 1001) uint8; for
pets.jpg the twin's Grad-CAM at ``features`` for the two dogs (``gradcam_alpha``
(2, 1280), ``gradcam_map`` (2, 7, 7), targets ``gradcam_targets``); the twin's
guided backprop on the random 64x64 input (``guided_x``, ``guided_target``,
``guided_grad``); the logits of the 224x448 cat|dog pair (``catdog_logits``); ``info`` (JSON).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import minicnn  # noqa: E402
from minicnn.inputs.images import load_image  # noqa: E402
from minicnn.inputs.preprocess import preprocess  # noqa: E402
from minicnn.inputs.samples import data_path  # noqa: E402

PHOTOS = ("pets.jpg", "chelsea.png", "coffee.png", "parrot.jpg", "hot_dog.jpg")
#: minicnn layer -> the TensorFlow tensor (first name) holding its output.
LAYERS = {"features": "MobilenetV2/Conv_1/Relu6", "features.6": "MobilenetV2/expanded_conv_5/add",
          "avgpool": "MobilenetV2/Logits/AvgPool"}
DOGS = ("Italian greyhound", "Boston bull, Boston terrier")


class GuidedReLU6(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        out = x.clamp(0, 6)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * ((out > 0) & (out < 6) & (g > 0))


def same_pad(size, k, s):
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


class Twin:
    """The TFLite graph run op by op in PyTorch (NCHW), weights dequantised from the file."""

    def __init__(self, path):
        import tflite
        buf = Path(path).read_bytes()
        self.model = m = tflite.Model.GetRootAsModel(buf, 0)
        self.g = g = m.Subgraphs(0)
        names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
        self.ops = []
        for i in range(g.OperatorsLength()):
            op = g.Operators(i)
            kind = names[max(m.OperatorCodes(op.OpcodeIndex()).BuiltinCode(),
                             m.OperatorCodes(op.OpcodeIndex()).DeprecatedBuiltinCode())]
            opts = None
            if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                opts = (tflite.Conv2DOptions if kind == "CONV_2D" else tflite.DepthwiseConv2DOptions)()
                table = op.BuiltinOptions()
                opts.Init(table.Bytes, table.Pos)
            self.ops.append((kind, [op.Inputs(j) for j in range(op.InputsLength())], op.Outputs(0), opts))
        self.input = g.Inputs(0)
        self.weights = {}
        for kind, ins, _, _ in self.ops:
            if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                w = self.dequantised(ins[1])
                w = w.transpose(0, 3, 1, 2) if kind == "CONV_2D" else w.transpose(3, 0, 1, 2)
                self.weights[ins[1]] = torch.from_numpy(np.ascontiguousarray(w))
                self.weights[ins[2]] = torch.from_numpy(self.dequantised(ins[2]))

    def name(self, index):
        return self.g.Tensors(index).Name().decode().split(";")[0]

    def dequantised(self, index):
        t = self.g.Tensors(index)
        dtype = {3: np.uint8, 2: np.int32}[t.Type()]
        q = np.frombuffer(self.model.Buffers(t.Buffer()).DataAsNumpy().tobytes(), dtype).reshape(t.ShapeAsNumpy())
        scale, zero = float(t.Quantization().ScaleAsNumpy()[0]), int(t.Quantization().ZeroPointAsNumpy()[0])
        return ((q.astype(np.int64) - zero).astype(np.float64) * np.float64(np.float32(scale))).astype(np.float32)

    def __call__(self, x, guided=False, keep=()):
        """Logits for x (N, 3, H, W); ``keep``: TF tensor names whose values are kept (as graph leaves)."""
        relu6 = GuidedReLU6.apply if guided else F.relu6
        values, kept = {self.input: x}, {}
        for kind, ins, out, opts in self.ops:
            a = values[ins[0]]
            if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                w, b = self.weights[ins[1]], self.weights[ins[2]]
                k, s = w.shape[2], opts.StrideH()
                if opts.Padding() == 0 and k > 1:           # SAME
                    (t, bo), (le, r) = same_pad(a.shape[2], k, s), same_pad(a.shape[3], k, s)
                    a = F.pad(a, (le, r, t, bo))
                y = F.conv2d(a, w, b, stride=s, groups=a.shape[1] if kind == "DEPTHWISE_CONV_2D" else 1)
                act = opts.FusedActivationFunction()
                assert act in (0, 3)
                y = relu6(y) if act == 3 else y
            elif kind == "ADD":
                y = a + values[ins[1]]
            elif kind == "AVERAGE_POOL_2D":
                y = a.mean(dim=(2, 3), keepdim=True)
            elif kind == "RESHAPE":
                y = a.flatten(1)
            elif kind == "SOFTMAX":
                return y_logits, kept                    # noqa: F821 (set by RESHAPE below)
            else:
                raise SystemExit(f"unexpected operator {kind}")
            name = self.name(out)
            if name in keep:
                y = y.detach().requires_grad_(True) if keep[name] == "leaf" else y
                kept[name] = y
            values[out] = y
            if kind == "RESHAPE":
                y_logits = y                              # noqa: F841 (read at SOFTMAX, a later pass of the loop)
        raise SystemExit("no SOFTMAX at the end")


def check_same_weights(twin, model):
    """The twin's dequantised arrays are bit for bit minicnn's (matched by TensorFlow names)."""
    by_name = {twin.name(i): w for i, w in twin.weights.items() if w.ndim == 4}
    for layer, source in model.meta["source_names"].items():
        mine = model.state_dict()[f"{layer}.weight"]
        assert np.array_equal(by_name[source].numpy(), mine), layer
    biases = sorted(w.numpy().tobytes() for w in twin.weights.values() if w.ndim == 1)
    ours = sorted(v.tobytes() for k, v in model.state_dict().items() if k.endswith(".bias"))
    assert biases == ours
    return len(by_name)


def grad_at(twin, x, target, layer, guided=False):
    """(A, dy^c/dA) at a minicnn layer name, via the TF tensor it corresponds to."""
    name = LAYERS[layer]
    logits, kept = twin(x, guided, keep={name: "leaf"})
    A = kept[name]
    (dA,) = torch.autograd.grad(logits[0, target], A)
    return logits.detach(), A.detach().numpy(), dA.numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tflite", help="mobilenet_v2_1.0_224_quant.tflite")
    ap.add_argument("--out-dir", default=str(ROOT / "tests" / "fixtures"))
    args = ap.parse_args()
    torch.manual_seed(0)
    from ai_edge_litert.interpreter import Interpreter

    model = minicnn.load("mobilenet_v2")
    prep = model.meta["preprocessing"]
    twin = Twin(args.tflite)
    n_weights = check_same_weights(twin, model)
    interp = Interpreter(model_path=args.tflite)
    interp.allocate_tensors()
    inp, outp = interp.get_input_details()[0], interp.get_output_details()[0]

    # ---- the shipped photos: twin logits, interpreter top-1
    logits, top1, scores, xs = [], [], [], {}
    for photo in PHOTOS:
        x = preprocess(load_image(data_path("images", photo)), prep)
        xs[photo] = x
        pixels = np.round(x[0].transpose(1, 2, 0) * 128 + 128)
        assert np.abs(x[0].transpose(1, 2, 0) * 128 + 128 - pixels).max() < 1e-3    # x is (p - 128) / 128
        with torch.no_grad():
            y, _ = twin(torch.from_numpy(x))
        logits.append(y.numpy()[0])
        interp.set_tensor(inp["index"], pixels.astype(np.uint8)[None])
        interp.invoke()
        q = interp.get_tensor(outp["index"])[0]
        scores.append(q.copy())
        top1.append(int(np.argmax(q)))
        print(f"{photo}: twin {model.classes[int(np.argmax(logits[-1]))]!r} {logits[-1].max():.3f}, "
              f"interpreter {model.classes[top1[-1]]!r} ({q.max()}/255)")

    # ---- Grad-CAM of both dogs in pets.jpg, at features
    alphas, maps, targets = [], [], []
    for dog in DOGS:
        c = model.classes.index(dog)
        _, A, dA = grad_at(twin, torch.from_numpy(xs["pets.jpg"]), c, "features")
        alpha = dA.mean(axis=(2, 3))
        alphas.append(alpha[0])
        maps.append(np.maximum(np.einsum("nk,nkij->nij", alpha, A), 0)[0])
        targets.append(c)

    # ---- a random 64x64 input: plain gradients (generic fixture) and guided backprop
    rng = np.random.default_rng(0)
    x64 = rng.standard_normal((1, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        y64, _ = twin(torch.from_numpy(x64))
    c64 = int(y64.argmax())
    generic = {"random64.x": x64, "random64.logits": y64.numpy(), "random64.target": np.array([c64])}
    xg = torch.from_numpy(x64).requires_grad_(True)
    y, _ = twin(xg)
    (dx,) = torch.autograd.grad(y[0, c64], xg)
    generic["random64.input_grad"] = dx.numpy()
    for layer in ("features.6", "features"):
        _, A, dA = grad_at(twin, torch.from_numpy(x64), c64, layer)
        generic[f"random64.act:{layer}"], generic[f"random64.grad:{layer}"] = A, dA
    xg = torch.from_numpy(x64).requires_grad_(True)
    y, _ = twin(xg, guided=True)
    (guided,) = torch.autograd.grad(y[0, c64], xg)

    # ---- chelsea, as test_fixtures.py prepares it (x absent: the photo through the model's preprocessing)
    xc = torch.from_numpy(xs["chelsea.png"])
    with torch.no_grad():
        yc, _ = twin(xc)
    cc = int(yc.argmax())
    _, A, dA = grad_at(twin, xc, cc, "avgpool")
    generic.update({"chelsea.logits": yc.numpy(), "chelsea.target": np.array([cc]),
                    "chelsea.act:avgpool": A, "chelsea.grad:avgpool": dA})

    # ---- the 224x448 cat|dog pair: chelsea | the Boston terrier of pets.jpg
    from minicnn.explain import imagenet_cat_dog_image
    pair = imagenet_cat_dog_image()
    xp = preprocess(pair, {**prep, "resize": "none"})
    with torch.no_grad():
        ycd, _ = twin(torch.from_numpy(xp))

    source = {"file": Path(args.tflite).name,
              "sha256": hashlib.sha256(Path(args.tflite).read_bytes()).hexdigest(),
              "torch": torch.__version__.split("+")[0], "weights_checked": n_weights,
              "interpreter": "ai-edge-litert " + __import__("importlib.metadata").metadata.version("ai-edge-litert")}
    info = {**source, "gradients": ["random64: input, features.6, features", "chelsea: avgpool"],
            "activations": ["random64: features.6, features", "chelsea: avgpool"],
            "cases": {"chelsea": "minicnn/data/images/chelsea.png, preprocessed by the model's description",
                      "random64": "N(0, 1), seed 0, shape (1, 3, 64, 64)"}}
    out = Path(args.out_dir)
    generic["info"] = np.frombuffer(json.dumps(info).encode(), np.uint8)
    np.savez_compressed(out / "mobilenet_v2_torch.npz", **generic)
    extra = {"photos": np.array(PHOTOS), "logits": np.stack(logits), "interpreter_top1": np.array(top1),
             "interpreter_scores": np.stack(scores), "gradcam_targets": np.array(targets),
             "gradcam_alpha": np.stack(alphas), "gradcam_map": np.stack(maps),
             "guided_x": x64, "guided_target": np.array(c64), "guided_grad": guided.numpy(),
             "catdog_logits": ycd.numpy(),
             "info": np.frombuffer(json.dumps({**source, "photos": list(PHOTOS)}).encode(), np.uint8)}
    np.savez_compressed(out / "mobilenet_v2_tflite.npz", **extra)
    print(f"wrote {out / 'mobilenet_v2_torch.npz'} and {out / 'mobilenet_v2_tflite.npz'}")


if __name__ == "__main__":
    main()
