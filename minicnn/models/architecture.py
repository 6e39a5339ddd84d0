"""Checking the architecture a weights file describes, before anything is built.

A weights file's ``spec`` (``Model.spec()``) names every layer, its type and
its settings; ``minicnn.model.build`` makes the layers from it. A file is
data from anywhere, so before a single array is allocated ``check_spec``
walks the description and checks:

- every field of every layer: its type (integers are JSON integers, not
  floats or booleans), its range, and no field a layer does not have;

      Conv2d            in_channels, out_channels  1..MAX_CHANNELS;  groups divides both
                        kernel_size, stride, dilation  1..MAX_WINDOW (an int or [h, w])
                        padding  0..MAX_WINDOW;  bias  true | false
      Linear            in_features, out_features  1..MAX_FEATURES;  bias
      BatchNorm2d       num_features  1..MAX_CHANNELS;  eps  in (0, 1]
      MaxPool2d,        kernel_size  1..MAX_WINDOW;  stride  1..MAX_WINDOW or null (= kernel);
      AvgPool2d         padding  0..kernel // 2 (PyTorch's rule: no window of padding only)
      AdaptiveAvgPool2d output_size  1..MAX_WINDOW
      Dropout           p  in [0, 1]
      ZeroPad2d         padding  0..MAX_WINDOW, one int or [left, right, top, bottom]
      OptionAShortcut   pad_channels  0..MAX_CHANNELS;  stride  1..MAX_WINDOW
      BasicBlock        in_planes, planes  1..MAX_CHANNELS;  stride  1..MAX_WINDOW;  shortcut  "A"
      InvertedResidual  in_channels, out_channels  1..MAX_CHANNELS;  stride 1 | 2;
                        expand_ratio  1..MAX_EXPAND;  padding  "symmetric" | "tf_same"
      Sequential        children  [[name, layer], ...]: names unique, non-empty, without "."
      ReLU, ReLU6, Flatten, Identity   no fields  (Add only inside the blocks that make it)

- what the layers cost: at most MAX_LAYERS modules nested at most MAX_DEPTH
  deep, at most MAX_PARAMETERS parameters in all;

- with the input size (C, H, W) known (``__meta__["input_size"]``), the shape
  that reaches every layer, (C, H, W) or (F,) after a Flatten: channels and
  features must match the layer's, every window must fit its (padded) input,

      Ho = floor((H + 2p - d(k - 1) - 1) / s) + 1 >= 1,

  and no layer's output, padded input or convolution columns (C k_h k_w Ho Wo)
  may hold more than MAX_ELEMENTS numbers per image, nor all outputs together
  more than MAX_KEPT (a pass keeps them for its backward).
  A model whose preprocessing keeps the image's shape (resize "shorter" or
  "none") runs at other sizes too; ``minicnn.models.content.check_architecture``
  checks its costs again at the largest input ``minicnn.inputs.preprocess.preprocess``
  takes by default, 512x512 (``costs_only``).

The network must end in logits, (K,) with 1 <= K <= MAX_CLASSES. Each refusal
is a one-line WeightsError naming the layer (its PyTorch path) and the field.

This module is over 450 lines because the table above is its specification
and one walk (``_Walk``, a method per layer type) follows a shape through
every layer: split, each part would need the whole walk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import WeightsError
from ..layers import MODULE_TYPES
from ..layers.inverted_residual import PADDINGS

MAX_CHANNELS = 1 << 16          # channels of any feature map
MAX_FEATURES = 1 << 20          # inputs or outputs of a Linear layer (VGG's classifier reads 25,088)
MAX_WINDOW = 64                 # kernel, stride, dilation, padding, adaptive output: each side
MAX_EXPAND = 64                 # an inverted residual's expansion ratio
MAX_CLASSES = 1 << 16           # logits of the network
MAX_INPUT_SIDE = 4096           # height or width of input_size
MAX_LAYERS = 4096               # modules (layers and containers)
MAX_DEPTH = 32                  # nesting of containers
MAX_PARAMETERS = 1 << 28        # 1 GiB as float32; VGG-19 has 143.7 million
MAX_ELEMENTS = 1 << 27          # one layer's output, padded input or columns, per image (512 MiB as float32)
MAX_KEPT = 1 << 28              # all layers' outputs of one image together (1 GiB as float32)
MAX_NAME = 128                  # characters of a child's name

_NO_DEFAULT = object()
_LEAVES_WITHOUT_FIELDS = ("ReLU", "ReLU6", "Flatten", "Identity")


@dataclass
class Summary:
    """What ``check_spec`` found: the output shape, parameter and module counts, every leaf (path, spec)."""

    shape: tuple
    parameters: int = 0
    modules: int = 0
    kept: int = 0
    leaves: list = field(default_factory=list)

    @property
    def outputs(self) -> int | None:
        """K, the number of logits, if the walk could tell."""
        return self.shape[0] if len(self.shape) == 1 else None


def _where(path: str, kind: str) -> str:
    return f"layer {path!r} ({kind})" if path else f"the architecture's root ({kind})"


def _refuse(path: str, kind: str, what: str) -> WeightsError:
    return WeightsError(f"{_where(path, kind)}: {what}")


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class _Fields:
    """Reads one layer's fields, each checked; ``done`` refuses the fields no reader asked for."""

    def __init__(self, spec: dict, path: str, kind: str):
        self.spec, self.path, self.kind, self.seen = spec, path, kind, {"type"}

    def get(self, name, default=_NO_DEFAULT):
        self.seen.add(name)
        if name not in self.spec:
            if default is _NO_DEFAULT:
                raise self.bad(name, "is missing")
            return default
        return self.spec[name]

    def bad(self, name, what) -> WeightsError:
        return _refuse(self.path, self.kind, f"{name} {what}")

    def int(self, name, lo, hi, default=_NO_DEFAULT) -> int:
        v = self.get(name, default)
        if not _is_int(v) or not lo <= v <= hi:
            raise self.bad(name, f"must be an integer in {lo}..{hi}; got {_show(v)}")
        return v

    def ints(self, name, n, lo, hi, default=_NO_DEFAULT) -> tuple:
        """An int (the same for all n) or a list of n ints, each in lo..hi."""
        v = self.get(name, default)
        values = [v] * n if _is_int(v) else v
        if not (isinstance(values, (list, tuple)) and len(values) == n
                and all(_is_int(x) and lo <= x <= hi for x in values)):
            shape = "[h, w]" if n == 2 else "[left, right, top, bottom]"
            raise self.bad(name, f"must be an integer or {shape}, each in {lo}..{hi}; got {_show(v)}")
        return tuple(values)

    def bool(self, name, default) -> bool:
        v = self.get(name, default)
        if not isinstance(v, bool):
            raise self.bad(name, f"must be true or false; got {_show(v)}")
        return v

    def number(self, name, lo, hi, default, *, open_low=False) -> float:
        v = self.get(name, default)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and (lo < v if open_low else lo <= v) and v <= hi
        if not ok:
            raise self.bad(name, f"must be a number in {'(' if open_low else '['}{lo}, {hi}]; got {_show(v)}")
        return float(v)

    def choice(self, name, choices, default=_NO_DEFAULT):
        v = self.get(name, default)
        if not isinstance(v, (str, int)) or isinstance(v, bool) or v not in choices:
            raise self.bad(name, f"must be one of {', '.join(map(str, choices))}; got {_show(v)}")
        return v

    def done(self) -> None:
        extra = sorted(str(k) for k in self.spec if k not in self.seen)
        if extra:
            raise _refuse(self.path, self.kind, f"has no field {extra[0]!r}")


class _Walk:
    """The state of one walk: counts, the leaves seen, and the caps checked as it goes."""

    def __init__(self, costs_only: bool = False):
        self.summary = Summary(shape=())
        self.costs_only = costs_only      # at another input size: a Linear layer's in_features may not match

    def count(self, path, kind, depth):
        self.summary.modules += 1
        if self.summary.modules > MAX_LAYERS:
            raise _refuse(path, kind, f"the architecture has more than {MAX_LAYERS} layers")
        if depth > MAX_DEPTH:
            raise _refuse(path, kind, f"containers are nested more than {MAX_DEPTH} deep")

    def params(self, path, kind, n):
        """Count a layer's arrays (parameters and BatchNorm's statistics), numbers in all."""
        self.summary.parameters += n
        if self.summary.parameters > MAX_PARAMETERS:
            raise _refuse(path, kind, f"the architecture needs more than {MAX_PARAMETERS:,} weights "
                                      f"({self.summary.parameters:,} up to this layer)")

    def output(self, path, kind, shape):
        """Count a leaf's output towards the cost of a pass."""
        n = _elements(shape)
        if n is not None:
            if n > MAX_ELEMENTS:
                raise _refuse(path, kind, f"its output {_shape_text(shape)} has {n:,} numbers per image, over "
                                          f"the limit of {MAX_ELEMENTS:,}")
            self.summary.kept += n
            if self.summary.kept > MAX_KEPT:
                raise _refuse(path, kind, f"the outputs up to this layer hold {self.summary.kept:,} numbers per "
                                          f"image, over the limit of {MAX_KEPT:,}")
        return shape

    # ------------------------------------------------------------ modules

    def module(self, spec, path: str, shape: tuple, depth: int) -> tuple:
        if not isinstance(spec, dict):
            raise WeightsError(f"{_where(path, 'layer')}: not a layer description {{\"type\": ...}}; "
                               f"got {_show(spec)}")
        kind = spec.get("type")
        if not isinstance(kind, str) or kind not in MODULE_TYPES:
            raise WeightsError(f"{_where(path, 'layer')}: unknown layer type {_show(kind)}; "
                               f"known: {', '.join(MODULE_TYPES)}")
        self.count(path, kind, depth)
        f = _Fields(spec, path, kind)
        if kind == "Sequential":
            return self.sequential(f, shape, depth)
        if kind == "BasicBlock":
            return self.basic_block(f, shape, depth)
        if kind == "InvertedResidual":
            return self.inverted_residual(f, shape, depth)
        if kind == "Add":
            raise _refuse(path, kind, "an Add has two inputs and stands only inside the blocks that make one "
                                      "(BasicBlock, InvertedResidual)")
        out = getattr(self, kind.lower())(f, shape)
        f.done()
        self.summary.leaves.append((path, spec))
        return self.output(path, kind, out)

    def sequential(self, f: _Fields, shape, depth):
        children = f.get("children", [])
        f.done()
        if not isinstance(children, list):
            raise f.bad("children", f"must be a list of [name, layer] pairs; got {_show(children)}")
        names = set()
        for i, child in enumerate(children):
            if not (isinstance(child, (list, tuple)) and len(child) == 2):
                raise f.bad("children", f"entry {i} must be a [name, layer] pair; got {_show(child)}")
            name = child[0]
            if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME or "." in name or name == "__meta__":
                raise f.bad("children", f"entry {i} has the name {_show(name)}; a name is 1..{MAX_NAME} characters "
                                        f"without '.'")
            if name in names:
                raise f.bad("children", f"name {name!r} appears twice")
            names.add(name)
            shape = self.module(child[1], f"{f.path}.{name}" if f.path else name, shape, depth + 1)
        return shape

    def add(self, path, shape, depth):
        """The addition a block makes of its two paths (of equal shapes)."""
        self.count(path, "Add", depth)
        self.summary.leaves.append((path, {"type": "Add"}))
        self.output(path, "Add", shape)

    def built(self, path, kind, spec, shape, depth):
        """A layer a block makes for itself, checked as if the file had named it."""
        return self.module(spec, path, shape, depth)

    def basic_block(self, f: _Fields, shape, depth):
        c_in, planes = f.int("in_planes", 1, MAX_CHANNELS), f.int("planes", 1, MAX_CHANNELS)
        stride = f.int("stride", 1, MAX_WINDOW, 1)
        f.choice("shortcut", ("A",), "A")
        f.done()
        p = f.path

        def conv(a, b, s):
            return {"type": "Conv2d", "in_channels": a, "out_channels": b, "kernel_size": [3, 3],
                    "stride": [s, s], "padding": [1, 1], "dilation": [1, 1], "bias": False}

        main = shape
        for name, spec in (("conv1", conv(c_in, planes, stride)),
                           ("bn1", {"type": "BatchNorm2d", "num_features": planes, "eps": 1e-5}),
                           ("relu1", {"type": "ReLU"}), ("conv2", conv(planes, planes, 1)),
                           ("bn2", {"type": "BatchNorm2d", "num_features": planes, "eps": 1e-5})):
            main = self.built(f"{p}.{name}", "BasicBlock", spec, main, depth + 1)
        if stride != 1 or c_in != planes:
            if c_in + 2 * (planes // 4) != planes:
                raise f.bad("planes", f"{planes}: the option A shortcut pads {c_in} channels by {planes // 4} on "
                                      f"each side, {c_in + 2 * (planes // 4)}, not {planes}")
            short = self.built(f"{p}.shortcut", "BasicBlock",
                               {"type": "OptionAShortcut", "pad_channels": planes // 4, "stride": stride},
                               shape, depth + 1)
        else:
            short = self.built(f"{p}.shortcut", "BasicBlock", {"type": "Identity"}, shape, depth + 1)
        if main != short:
            raise f.bad("stride", f"the block's two paths give {_shape_text(main)} and {_shape_text(short)}")
        self.add(f"{p}.add", main, depth + 1)
        return self.built(f"{p}.relu", "BasicBlock", {"type": "ReLU"}, main, depth + 1)

    def inverted_residual(self, f: _Fields, shape, depth):
        c_in, c_out = f.int("in_channels", 1, MAX_CHANNELS), f.int("out_channels", 1, MAX_CHANNELS)
        stride = f.choice("stride", (1, 2), 1)
        t = f.int("expand_ratio", 1, MAX_EXPAND, 6)
        padding = f.choice("padding", PADDINGS, "symmetric")
        f.done()
        hidden = c_in * t
        if hidden > MAX_CHANNELS:
            raise f.bad("expand_ratio", f"{t} makes {hidden} hidden channels, over the limit of {MAX_CHANNELS}")
        p, x = f.path, shape
        self.count(f"{p}.conv", "Sequential", depth + 1)
        units = ([(c_in, hidden, 1, 1, 1)] if t != 1 else []) + [(hidden, hidden, 3, stride, hidden)]
        for i, (a, b, k, s, g) in enumerate(units):
            unit = f"{p}.conv.{i}"
            self.count(unit, "Sequential", depth + 2)
            pad = (k - 1) // 2
            if padding == "tf_same" and s == 2 and k == 3:
                x = self.built(f"{unit}.pad", "InvertedResidual", {"type": "ZeroPad2d", "padding": [0, 1, 0, 1]},
                               x, depth + 3)
                pad = 0
            x = self.built(f"{unit}.0", "InvertedResidual",
                           {"type": "Conv2d", "in_channels": a, "out_channels": b, "kernel_size": [k, k],
                            "stride": [s, s], "padding": [pad, pad], "dilation": [1, 1], "bias": True,
                            **({"groups": g} if g != 1 else {})}, x, depth + 3)
            x = self.built(f"{unit}.2", "InvertedResidual", {"type": "ReLU6"}, x, depth + 3)
        x = self.built(f"{p}.conv.{len(units)}", "InvertedResidual",
                       {"type": "Conv2d", "in_channels": hidden, "out_channels": c_out, "kernel_size": [1, 1],
                        "stride": [1, 1], "padding": [0, 0], "dilation": [1, 1], "bias": True}, x, depth + 2)
        if stride == 1 and c_in == c_out:
            self.add(f"{p}.add", x, depth + 1)
        return x

    # ------------------------------------------------------------ leaves

    def map_in(self, f: _Fields, shape, channels=None, field="in_channels"):
        """The (C, H, W) reaching a layer that needs a feature map, C checked against ``channels``."""
        if len(shape) != 3:
            raise _refuse(f.path, f.kind, f"needs a feature map (C, H, W) but gets {_shape_text(shape)} "
                                          f"(after a Flatten or a Linear layer)")
        if channels is not None and shape[0] is not None and shape[0] != channels:
            raise f.bad(field, f"is {channels} but the layer gets {shape[0]} channels")
        return shape

    def window(self, f: _Fields, shape, k, s, p, d=(1, 1)):
        c, h, w = shape
        if h is None or w is None:
            return None, None
        out = []
        for name, size, kk, ss, pp, dd in (("height", h, k[0], s[0], p[0], d[0]), ("width", w, k[1], s[1], p[1], d[1])):
            reach = dd * (kk - 1) + 1
            if size + 2 * pp < reach:
                raise f.bad("kernel_size", f"{list(k)} (dilation {list(d)}) spans {reach} but the padded input "
                                           f"{name} is {size + 2 * pp}")
            out.append((size + 2 * pp - reach) // ss + 1)
        padded = None if c is None else c * (h + 2 * p[0]) * (w + 2 * p[1])
        if padded is not None and padded > MAX_ELEMENTS:
            raise f.bad("padding", f"{list(p)} makes a padded input of {padded:,} numbers per image, over the "
                                   f"limit of {MAX_ELEMENTS:,}")
        return tuple(out)

    def conv2d(self, f: _Fields, shape):
        c_in, c_out = f.int("in_channels", 1, MAX_CHANNELS), f.int("out_channels", 1, MAX_CHANNELS)
        k = f.ints("kernel_size", 2, 1, MAX_WINDOW)
        s, p = f.ints("stride", 2, 1, MAX_WINDOW, 1), f.ints("padding", 2, 0, MAX_WINDOW, 0)
        d = f.ints("dilation", 2, 1, MAX_WINDOW, 1)
        bias = f.bool("bias", True)
        groups = f.int("groups", 1, MAX_CHANNELS, 1)
        if c_in % groups or c_out % groups:
            raise f.bad("groups", f"{groups} must divide in_channels {c_in} and out_channels {c_out}")
        self.params(f.path, f.kind, c_out * (c_in // groups) * k[0] * k[1] + (c_out if bias else 0))
        c, h, w = self.map_in(f, shape, c_in)
        ho, wo = self.window(f, (c_in, h, w), k, s, p, d)
        if ho is not None:
            columns = c_in * k[0] * k[1] * ho * wo
            if columns > MAX_ELEMENTS:
                raise f.bad("kernel_size", f"{list(k)} on {c_in} channels gives columns of {columns:,} numbers per "
                                           f"image, over the limit of {MAX_ELEMENTS:,}")
        return c_out, ho, wo

    def linear(self, f: _Fields, shape):
        n_in, n_out = f.int("in_features", 1, MAX_FEATURES), f.int("out_features", 1, MAX_FEATURES)
        bias = f.bool("bias", True)
        self.params(f.path, f.kind, n_in * n_out + (n_out if bias else 0))
        if len(shape) != 1:
            raise _refuse(f.path, f.kind, f"needs features (F,) but gets a feature map {_shape_text(shape)}; "
                                          f"a Flatten or a pooling to 1x1 then Flatten comes first")
        if shape[0] is not None and shape[0] != n_in and not self.costs_only:
            raise f.bad("in_features", f"is {n_in} but the layer gets {shape[0]} features")
        return (n_out,)

    def batchnorm2d(self, f: _Fields, shape):
        n = f.int("num_features", 1, MAX_CHANNELS)
        f.number("eps", 0, 1, 1e-5, open_low=True)
        self.params(f.path, f.kind, 4 * n)
        return self.map_in(f, shape, n, "num_features")

    def _pool(self, f: _Fields, shape):
        k = f.ints("kernel_size", 2, 1, MAX_WINDOW)
        stride = f.get("stride", None)
        s = k if stride is None else f.ints("stride", 2, 1, MAX_WINDOW)
        p = f.ints("padding", 2, 0, MAX_WINDOW, 0)
        if p[0] > k[0] // 2 or p[1] > k[1] // 2:
            raise f.bad("padding", f"{list(p)} must be at most half the kernel {list(k)} (a window of padding only "
                                   f"has no input)")
        c, h, w = self.map_in(f, shape)
        return (c, *self.window(f, shape, k, s, p))

    maxpool2d = avgpool2d = _pool

    def adaptiveavgpool2d(self, f: _Fields, shape):
        out = f.ints("output_size", 2, 1, MAX_WINDOW)
        c, h, w = self.map_in(f, shape)
        return (c, *out)

    def dropout(self, f: _Fields, shape):
        f.number("p", 0, 1, 0.5)
        return shape

    def zeropad2d(self, f: _Fields, shape):
        left, right, top, bottom = f.ints("padding", 4, 0, MAX_WINDOW)
        c, h, w = self.map_in(f, shape)
        return (c, None if h is None else top + h + bottom, None if w is None else left + w + right)

    def optionashortcut(self, f: _Fields, shape):
        pad = f.int("pad_channels", 0, MAX_CHANNELS)
        s = f.int("stride", 1, MAX_WINDOW, 2)
        c, h, w = self.map_in(f, shape)
        if c is not None and c + 2 * pad > MAX_CHANNELS:
            raise f.bad("pad_channels", f"{pad} makes {c + 2 * pad} channels, over the limit of {MAX_CHANNELS}")

        def up(n):
            return None if n is None else -(-n // s)

        return (None if c is None else c + 2 * pad, up(h), up(w))

    def flatten(self, f: _Fields, shape):
        return (_elements(shape),)

    def relu(self, f, shape):
        return shape

    relu6 = identity = relu


def _elements(shape) -> int | None:
    n = 1
    for s in shape:
        if s is None:
            return None
        n *= s
    return n


def _shape_text(shape) -> str:
    return "(" + ", ".join("?" if s is None else str(s) for s in shape) + (",)" if len(shape) == 1 else ")")


def check_spec(spec, input_size=None, *, costs_only: bool = False) -> Summary:
    """Check an architecture description before it is built; a one-line WeightsError naming layer and field.

    ``input_size`` (C, H, W), if known, lets every layer's input shape be followed
    and its cost checked; without it the channels and features are followed.
    ``costs_only``: the costs at another input size than the model's own (a
    fully convolutional model runs at any), where the features reaching a
    Linear layer need not match it.
    """
    walk = _Walk(costs_only)
    if not isinstance(spec, dict) or spec.get("type") != "Sequential":
        raise WeightsError(f"the architecture ('spec') must be a Sequential of named layers; got "
                           f"{_show(spec.get('type') if isinstance(spec, dict) else spec)}")
    shape = tuple(input_size) if input_size else (None, None, None)
    shape = walk.module(spec, "", shape, 0)
    if len(shape) != 1:
        raise WeightsError(f"the architecture ends in a feature map {_shape_text(shape)}, not logits (K,); "
                           f"a Flatten (after pooling) must come last")
    if shape[0] is not None and not 1 <= shape[0] <= MAX_CLASSES and not costs_only:
        raise WeightsError(f"the architecture gives {shape[0]:,} logits, over the limit of {MAX_CLASSES:,} classes")
    walk.summary.shape = shape
    return walk.summary


__all__ = ["check_spec", "Summary", "MAX_CHANNELS", "MAX_FEATURES", "MAX_WINDOW", "MAX_EXPAND", "MAX_CLASSES",
           "MAX_INPUT_SIDE", "MAX_LAYERS", "MAX_DEPTH", "MAX_PARAMETERS", "MAX_ELEMENTS", "MAX_KEPT"]
