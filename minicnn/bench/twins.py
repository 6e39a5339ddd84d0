"""PyTorch twins of minicnn models, built layer by layer from ``model.spec()`` with the same weights,
and the same operations written in PyTorch (Grad-CAM, guided backprop, ...), for the comparison."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np
from PIL import Image

from ..errors import MinicnnError
from ..explain.occlusion import offsets
from ..inputs.datasets import open_dataset
from ..models.evaluate import label_map
from .cases import EVALUATE_BATCH, MASKED_BATCH_ELEMENTS, Case


def torch_twin(model, torch):
    """A PyTorch module with minicnn's architecture (from model.spec()), names and weights."""
    nn, F = torch.nn, torch.nn.functional

    class GuidedReLU(torch.autograd.Function):
        """Forward max(x, 0); backward g * (x > 0) * (g > 0)."""

        @staticmethod
        def forward(ctx, x):
            out = x.clamp(min=0)
            ctx.save_for_backward(out)
            return out

        @staticmethod
        def backward(ctx, g):
            (out,) = ctx.saved_tensors
            return g * ((out > 0) & (g > 0))

    class ReLU(nn.Module):
        guided = False

        def forward(self, x):
            return GuidedReLU.apply(x) if self.guided else F.relu(x)

    class OptionA(nn.Module):
        def __init__(self, pad_channels, stride):
            super().__init__()
            self.p, self.s = pad_channels, stride

        def forward(self, x):
            return F.pad(x[:, :, ::self.s, ::self.s], (0, 0, 0, 0, self.p, self.p))

    class BasicBlock(nn.Module):
        def __init__(self, in_planes, planes, stride=1, shortcut="A"):
            super().__init__()
            self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
            self.bn1, self.relu1 = nn.BatchNorm2d(planes), ReLU()
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2, self.relu = nn.BatchNorm2d(planes), ReLU()
            self.shortcut = OptionA(planes // 4, stride) if stride != 1 or in_planes != planes else nn.Identity()

        def forward(self, x):
            h = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
            return self.relu(h + self.shortcut(x))

    class Flatten(nn.Module):
        def forward(self, x):
            return torch.flatten(x, 1)

    class GuidedReLU6(torch.autograd.Function):
        """Forward clamp(x, 0, 6); backward g * (0 < x < 6) * (g > 0)."""

        @staticmethod
        def forward(ctx, x):
            out = x.clamp(0, 6)
            ctx.save_for_backward(out)
            return out

        @staticmethod
        def backward(ctx, g):
            (out,) = ctx.saved_tensors
            return g * ((out > 0) & (out < 6) & (g > 0))

    class ReLU6(ReLU):
        def forward(self, x):
            return GuidedReLU6.apply(x) if self.guided else F.relu6(x)

    class ZeroPad2d(nn.Module):
        def __init__(self, padding):
            super().__init__()
            self.padding = tuple(padding)               # (left, right, top, bottom), F.pad's order

        def forward(self, x):
            return F.pad(x, self.padding)

    class InvertedResidual(nn.Module):
        def __init__(self, in_channels, out_channels, stride=1, expand_ratio=6, padding="symmetric"):
            super().__init__()
            hidden = in_channels * expand_ratio

            def conv_relu6(c_in, c_out, k, s=1, groups=1):
                pad = padding == "tf_same" and s == 2 and k == 3
                layers = [("pad", ZeroPad2d((0, 1, 0, 1)))] if pad else []
                layers += [("0", nn.Conv2d(c_in, c_out, k, s, 0 if pad else (k - 1) // 2, groups=groups)),
                           ("2", ReLU6())]
                return nn.Sequential(OrderedDict(layers))
            layers = [conv_relu6(in_channels, hidden, 1)] if expand_ratio != 1 else []
            layers += [conv_relu6(hidden, hidden, 3, stride, hidden), nn.Conv2d(hidden, out_channels, 1)]
            self.conv = nn.Sequential(*layers)
            self.use_residual = stride == 1 and in_channels == out_channels

        def forward(self, x):
            return x + self.conv(x) if self.use_residual else self.conv(x)

    def build(spec):
        kind, kw = spec["type"], {k: v for k, v in spec.items() if k != "type"}
        if kind == "Sequential":
            return nn.Sequential(OrderedDict((name, build(child)) for name, child in kw["children"]))
        simple = {"Conv2d": nn.Conv2d, "MaxPool2d": nn.MaxPool2d, "AvgPool2d": nn.AvgPool2d,
                  "AdaptiveAvgPool2d": nn.AdaptiveAvgPool2d, "Linear": nn.Linear, "Dropout": nn.Dropout,
                  "BatchNorm2d": nn.BatchNorm2d, "Identity": nn.Identity}
        if kind in simple:
            return simple[kind](**{k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()})
        others = {"ReLU": ReLU, "Flatten": Flatten, "BasicBlock": BasicBlock,
                  "OptionAShortcut": lambda pad_channels, stride: OptionA(pad_channels, stride),
                  "ReLU6": ReLU6, "ZeroPad2d": ZeroPad2d, "InvertedResidual": InvertedResidual}
        if kind not in others:
            raise MinicnnError(f"the PyTorch twin has no {kind} layer")
        return others[kind](**kw)

    with torch.no_grad():
        twin = build(model.spec()).eval()
        missing, unexpected = twin.load_state_dict(
            {k: torch.from_numpy(np.array(v, np.float32)) for k, v in model.state_dict().items()}, strict=False)
    if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
        raise MinicnnError(f"the PyTorch twin does not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
    for p in twin.parameters():
        p.requires_grad_(False)
    twin.relus = [m for m in twin.modules() if isinstance(m, ReLU)]
    return twin


def torch_operations(case: Case, twin, torch, only: str | None = None) -> dict[str, Callable[[], np.ndarray]]:
    """The same operations in PyTorch: gradients only where the method needs them.

    ``only``: the one operation wanted (``evaluate`` decodes the data set when it is built).
    """
    F = torch.nn.functional
    x, c = torch.from_numpy(case.x), case.target
    A_module = twin.get_submodule(case.layer)

    def forward():
        with torch.no_grad():
            return twin(x)

    def gradcam():
        kept = {}

        def keep(module, inputs, out):        # the graph starts at A: nothing before it is recorded
            kept["A"] = out.detach().requires_grad_(True)
            return kept["A"]

        hook = A_module.register_forward_hook(keep)
        try:
            score = twin(x)[0, c]
        finally:
            hook.remove()
        A = kept["A"]
        (dA,) = torch.autograd.grad(score, A)
        alpha = dA.mean(dim=(2, 3), keepdim=True)
        return torch.relu((alpha * A.detach()).sum(1))

    def guided_backprop():
        for relu in twin.relus:
            relu.guided = True
        try:
            xg = x.detach().requires_grad_(True)
            (dx,) = torch.autograd.grad(twin(xg)[0, c], xg)
        finally:
            for relu in twin.relus:
                relu.guided = False
        return dx

    def guided_gradcam():
        cam = gradcam()
        heat = F.interpolate(cam[:, None], size=x.shape[2:], mode="bilinear", align_corners=False)
        return guided_backprop() * heat

    def occlusion():
        n, ch, h, w = x.shape
        size = max(1, min(h, w) // 4)
        stride = max(1, size // 4)
        rows, cols = offsets(h, size, stride), offsets(w, size, stride)
        positions = [(r, s) for r in rows for s in cols]
        per_pass = max(1, 2 ** 18 // x[0].numel())
        with torch.no_grad():
            base = twin(x)[0, c]
            grid = torch.empty(len(positions))
            for start in range(0, len(positions), per_pass):
                chunk = positions[start:start + per_pass]
                copies = x.repeat(len(chunk), 1, 1, 1)
                for b, (r, s) in enumerate(chunk):
                    copies[b, :, r:r + size, s:s + size] = 0
                grid[start:start + len(chunk)] = base - twin(copies)[:, c]
            total, count = torch.zeros(h, w), torch.zeros(h, w)
            for (r, s), drop in zip(positions, grid):
                total[r:r + size, s:s + size] += drop
                count[r:r + size, s:s + size] += 1
        return total / count

    ops = {"forward": forward, "gradcam": gradcam, "guided_backprop": guided_backprop,
           "guided_gradcam": guided_gradcam, "occlusion": occlusion}
    if case.batch is not None:
        b64, b256 = torch.from_numpy(case.batch[:64]), torch.from_numpy(case.batch)

        def batch(b):
            with torch.no_grad():
                return twin(b)

        def backward64():
            xg = b64.detach().requires_grad_(True)
            (dx,) = torch.autograd.grad(twin(xg)[:, c].sum(), xg)
            return dx

        def scorecam():
            kept = {}
            hook = A_module.register_forward_hook(lambda module, inputs, out: kept.update(A=out))
            try:
                with torch.no_grad():
                    twin(x)
            finally:
                hook.remove()
            A = kept["A"][0]                                                       # K, h, w
            with torch.no_grad():
                U = F.interpolate(A[None], size=x.shape[2:], mode="bilinear", align_corners=False)[0]
                low, high = U.amin(dim=(1, 2), keepdim=True), U.amax(dim=(1, 2), keepdim=True)
                k = torch.nonzero(high.flatten() > low.flatten()).flatten()       # constant maps weigh 0
                H = (U[k] - low[k]) / (high[k] - low[k])
                per_pass = max(1, MASKED_BATCH_ELEMENTS // x[0].numel())
                scores = torch.cat([torch.softmax(twin(x * H[j:j + per_pass, None]), dim=1)[:, c]
                                    for j in range(0, len(k), per_pass)])
                alpha = torch.zeros(len(A)).index_put_((k,), scores)
                return torch.relu((alpha[:, None, None] * A).sum(0))

        ops.update({"batch64": lambda: batch(b64), "batch256": lambda: batch(b256), "backward64": backward64,
                    "scorecam": scorecam})
        if case.data and only in (None, "evaluate"):
            ops["evaluate"] = torch_evaluate(case, twin, torch)
    return {k: v for k, v in ops.items() if k in case.operations}


def torch_evaluate(case: Case, twin, torch) -> Callable[[], np.ndarray]:
    """A PyTorch loop over the test set's images, decoded here (untimed, and resized as the model's
    preprocessing says), 200 at a time: scale, normalise, channels first, classify, count the correct top-1."""

    dataset = open_dataset(case.data)
    prep = case.model.meta["preprocessing"]
    to_model = torch.from_numpy(label_map(case.model.classes, dataset.classes))
    h, w = prep["size"]

    def resized(images):                              # as minicnn's "exact" resize, when sizes differ
        if images.shape[1:3] == (h, w):
            return images
        return np.stack([np.asarray(Image.fromarray(im).resize((w, h), Image.Resampling.BILINEAR)) for im in images])

    decoded = [(torch.from_numpy(resized(images)), torch.from_numpy(labels))
               for images, labels in dataset.batches(EVALUATE_BATCH)]
    mean = torch.tensor(prep["mean"], dtype=torch.float32)
    std = torch.tensor(prep["std"], dtype=torch.float32)

    def evaluate():
        correct = 0
        with torch.no_grad():
            for images, labels in decoded:
                x = ((images.float() / 255 - mean) / std).permute(0, 3, 1, 2).contiguous()
                correct += int((twin(x).argmax(dim=1) == to_model[labels]).sum())
        return np.array([correct])
    return evaluate
