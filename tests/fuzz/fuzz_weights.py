"""A seeded fuzz run over the weights loader: mutate good files, load them, check the promise.

    python -m tests.fuzz.fuzz_weights --seed 2026 --count 3000     (from the repository root)

Each case starts from one of four good files (the shipped resnet20_cifar10 and vgg_cifar10, a
tiny MobileNetV2 and a tiny quantised TFLite conversion), applies one to three mutations drawn
from ``MUTATIONS`` (a layer field set to a hostile value, a metadata field, array values, an
array's dtype or shape, zip members duplicated, dropped, renamed, cut or padded, a lying
header, bytes of the zip itself) and loads the result. The promise: either a model that runs
(a forward pass at its input size gives finite logits, one per class name) or a one-line
WeightsError; never another exception, never a case slower than a few seconds, and memory
that stays near the size of the good files. ``run`` returns the counts and every failure;
``weights.md`` records a long run.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import resource
import sys
import time
import traceback
import zipfile
from pathlib import Path

import numpy as np

import minicnn
from minicnn.errors import InputError, WeightsError
from minicnn.models import weights, zoo

from .weights_files import SHIPPED, leaves, members, meta_bytes, npy, write

HOSTILE = [0, -1, -5, 1, 2, 3, 7, 64, 65, 1_000_000, 2 ** 31 - 1, 2 ** 63, 10 ** 7, 1.5, float("nan"),
           float("inf"), -0.0, None, True, False, "x", "", [], [0], [0, 0], [1, 1], [3, 3], [10 ** 9, 1], [-1, 2],
           [1, 2, 3, 4], {"a": 1}, "A", "tf_same", [[1]], [3, 60000, 60000], [3, 32, 32], [3, 4096, 4096]]
FIELDS = ["stride", "padding", "groups", "kernel_size", "dilation", "bias", "eps", "p", "output_size", "in_channels",
          "out_channels", "in_features", "out_features", "num_features", "planes", "in_planes", "expand_ratio",
          "pad_channels", "shortcut", "type", "children", "extra"]
META_FIELDS = ["input_size", "classes", "preprocessing", "name", "arch", "quantization", "accuracy", "provenance",
               "licence", "format", "version", "spec"]


def tiny_mobilenet():
    """A MobileNetV2 of three blocks at 32x32 (TensorFlow's SAME padding, a ZeroPad2d at stride 2), 10 classes."""
    model = zoo.mobilenet_v2(num_classes=10, settings=((1, 8, 1, 1), (2, 8, 2, 2), (2, 16, 1, 2)),
                             first_channels=8, last_channels=32, seed=1)
    model.meta.update(name="tiny_mobilenet", input_size=[3, 32, 32], classes=[f"c{i}" for i in range(10)],
                      preprocessing={**model.meta["preprocessing"], "size": [32, 32]})
    return model


def base_files(folder: Path) -> dict[str, Path]:
    """The good files the cases start from (two shipped, two written into ``folder``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from models.test_convert_tflite import mini_mobilenet

    from minicnn.models.convert.tflite import convert_graph
    model, quantized = convert_graph(mini_mobilenet(per_channel=True), meta={"name": "quantised"})
    model.meta["classes"] = [f"k{i}" for i in range(5)]
    return {"resnet20": SHIPPED / "resnet20_cifar10.npz", "vgg": SHIPPED / "vgg_cifar10.npz",
            "mobilenet": weights.save(tiny_mobilenet(), Path(folder) / "mobilenet.npz", force=True),
            "quantised": weights.save(model, Path(folder) / "quantised.npz", force=True, quantized=quantized)}


# ------------------------------------------------------- mutations: (rng, members, meta) -> (members, meta, what)

def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def _array(data: bytes):
    """A member's array, or None when an earlier mutation already broke it."""
    try:
        a = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception:
        return None
    return a if isinstance(a, np.ndarray) else None


def spec_field(rng, items, meta):
    found = list(leaves(meta.get("spec")))
    if not found:
        meta["spec"] = _pick(rng, HOSTILE)
        return items, meta, f"spec = {meta['spec']!r}"
    path, node = _pick(rng, found)
    field = _pick(rng, sorted(set(node) - {"type"}) + FIELDS)
    node[field] = _pick(rng, HOSTILE)
    return items, meta, f"spec {path}.{field} = {node[field]!r}"


def meta_field(rng, items, meta):
    field = _pick(rng, META_FIELDS)
    value = _pick(rng, HOSTILE)
    if field == "classes" and rng.random() < 0.5:
        value = [f"c{i}" for i in range(int(rng.integers(0, 12)))]
    if field == "preprocessing" and isinstance(meta.get(field), dict) and rng.random() < 0.7:
        value = {**meta[field], _pick(rng, ["mean", "std", "resize", "size", "resize_shorter", "interpolation"]): value}
    meta[field] = value
    return items, meta, f"meta {field} = {str(value)[:60]}"


def array_values(rng, items, meta):
    name, data = _pick(rng, [(n, d) for n, d in items if n != "__meta__.npy"] or items)
    a = _array(data)
    if a is None or a.dtype.kind != "f" or a.size == 0:
        return items, meta, f"values of {name}: integer, unchanged"
    value = _pick(rng, [np.nan, np.inf, -np.inf, 1e39, -1.0, 0.0, 1e-45])
    a = a.astype(np.float64) if value == 1e39 else a.copy()       # 1e39: float64 that overflows float32
    a.flat[int(rng.integers(a.size))] = value
    return [(n, npy(a) if n == name else d) for n, d in items], meta, f"values of {name}: {value}"


def array_form(rng, items, meta):
    name, data = _pick(rng, [(n, d) for n, d in items if n != "__meta__.npy"] or items)
    a = _array(data)
    if a is None:
        return items, meta, f"form of {name}: already broken"
    kind = _pick(rng, ["int8", "int32", "uint8", "float16", "float64", "complex64", "bool", "U3", "V4", "object",
                       "drop-axis", "add-axis", "transpose", "fortran", "empty", "scalar"])
    if kind == "object":
        new = npy(a.astype(object), allow_pickle=True)
    elif kind == "drop-axis":
        new = npy(a.reshape(-1)[: max(a.size // 2, 1)])
    elif kind == "add-axis":
        new = npy(a[None])
    elif kind == "transpose":
        new = npy(a.T.copy())
    elif kind == "fortran":
        new = npy(np.asfortranarray(a))
    elif kind == "empty":
        new = npy(np.zeros((0,) * max(a.ndim, 1), a.dtype))
    elif kind == "scalar":
        new = npy(np.float32(1))
    elif kind == "V4":
        new = npy(np.zeros(a.shape, "V4"))
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            new = npy(a.astype(kind))
    return [(n, new if n == name else d) for n, d in items], meta, f"form of {name}: {kind}"


def member_structure(rng, items, meta):
    i = int(rng.integers(len(items)))
    name, data = items[i]
    kind = _pick(rng, ["duplicate", "drop", "junk", "rename", "cut", "pad", "lying-header", "swap"])
    items = list(items)
    if kind == "duplicate":
        items.insert(int(rng.integers(len(items) + 1)), (name, data))
    elif kind == "drop":
        items.pop(i)
    elif kind == "junk":
        items.append((_pick(rng, ["junk.npy", "junk", "a/b.npy", "dir/", "__meta__", "x.weight.npy"]),
                      bytes(rng.bytes(40))))
    elif kind == "rename":
        items[i] = (_pick(rng, [name[:-4], name + ".npy", name.upper(), "../" + name, ""]) or "x", data)
    elif kind == "cut":
        items[i] = (name, data[: int(rng.integers(len(data)))])
    elif kind == "pad":
        items[i] = (name, data + bytes(rng.bytes(int(rng.integers(1, 100)))))
    elif kind == "lying-header":
        a = _array(data)
        a = np.zeros(1) if a is None else a
        header = np.lib.format.header_data_from_array_1_0(a)
        header["shape"] = tuple(_pick(rng, [(10 ** 9,), (2 ** 31 - 1, 2), (-1,), (3, 3, 3, 3, 3), ()]))
        buf = io.BytesIO()
        try:
            np.lib.format.write_array_header_1_0(buf, header)
        except ValueError:
            buf.write(data[:128])
        items[i] = (name, buf.getvalue() + data[128:])
    elif kind == "swap" and len(items) > 2:
        j = int(rng.integers(len(items)))
        items[i], items[j] = (name, items[j][1]), (items[j][0], data)
    return items, meta, f"member {name}: {kind}"


def quantization(rng, items, meta):
    table = meta.get("quantization")
    if not isinstance(table, dict) or not table:
        meta["quantization"] = {_pick(rng, [n[:-4] for n, _ in items if n != "__meta__.npy"]):
                                {"scale": _pick(rng, HOSTILE), "zero_point": _pick(rng, HOSTILE)}}
        return items, meta, "quantization added"
    key = _pick(rng, sorted(table))
    field = _pick(rng, ["scale", "zero_point", "axis", "extra"])
    value = _pick(rng, HOSTILE + [1e30, -1e30, 256, -129, 2 ** 40])
    if isinstance(table[key], dict):
        table[key][field] = value
    return items, meta, f"quantization {key}.{field} = {value!r}"


MUTATIONS = [spec_field, spec_field, meta_field, array_values, array_form, member_structure, member_structure,
             quantization]


def _zip_bytes(rng, raw: bytes) -> tuple[bytes, str]:
    """The written file itself changed: bytes flipped (often in the central directory), cut, or spliced."""
    data = bytearray(raw)
    kind = _pick(rng, ["flip-tail", "flip", "cut", "splice"])
    if kind == "cut":
        return bytes(data[: int(rng.integers(len(data)))]), "zip cut"
    for _ in range(int(rng.integers(1, 8))):
        at = (len(data) - 1 - int(rng.integers(min(len(data), 2000))) if kind == "flip-tail"
              else int(rng.integers(len(data))))
        if kind == "splice":
            data[at:at + 16] = rng.bytes(16)
        else:
            data[at] = int(rng.integers(256))
    return bytes(data), f"zip {kind}"


# ---------------------------------------------------------------- the run

def signature(message: str, path: Path) -> str:
    """A refusal's kind: its message without the file name, quoted names, numbers and what follows ';' or 'got'."""
    text = message.replace(str(path), "FILE").split("; ")[0].split(" got ")[0]
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'...'", text)
    text = re.sub(r"\([^()]*\)|\[[^\[\]]*\]", "(...)", text)
    return re.sub(r"-?\d[\d,.e+-]*", "N", text)[:90]


def check_case(path: Path, refusals: dict | None = None) -> str:
    """'refused' or 'loaded'; raises AssertionError (or anything else) when the promise is broken."""
    try:
        model = minicnn.load(path)
    except WeightsError as e:
        assert str(e) and "\n" not in str(e), repr(str(e))
        if refusals is not None:
            kind = signature(str(e), path)
            refusals[kind] = refusals.get(kind, 0) + 1
        return "refused"
    size = model.input_size or (3, 32, 32)
    try:
        logits = model.forward(np.zeros((1, *size), np.float32))
    except InputError:                    # a model without input_size may need another size: a one-line answer
        return "loaded"
    assert np.isfinite(logits).all(), "a loaded model gives non-finite logits"
    if model.classes:
        assert logits.shape == (1, len(model.classes)), (logits.shape, len(model.classes))
    return "loaded"


def run(seed: int, count: int, folder: Path, verbose: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    bases = {name: members(path) for name, path in base_files(folder).items()}
    report = {"seed": seed, "count": count, "refused": 0, "loaded": 0, "failures": [], "slowest_s": 0.0,
              "kinds": {}, "refusals": {}}
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for i in range(count):
        base = _pick(rng, sorted(bases))
        items = list(bases[base])
        meta = json.loads(np.load(io.BytesIO(dict(items)["__meta__.npy"])).tobytes())
        whats = []
        for _ in range(int(rng.integers(1, 4))):
            mutation = _pick(rng, MUTATIONS)
            items, meta, what = mutation(rng, items, meta)
            whats.append(what)
        items = [(n, meta_bytes(meta) if n == "__meta__.npy" else d) for n, d in items]
        path = write(folder / "case.npz", items, _pick(rng, [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
        if rng.random() < 0.15:
            raw, what = _zip_bytes(rng, path.read_bytes())
            path.write_bytes(raw)
            whats.append(what)
        start = time.perf_counter()
        try:
            outcome = check_case(path, report["refusals"])
        except Exception as e:          # the promise broken: record it
            outcome = "failure"
            report["failures"].append({"case": i, "base": base, "mutations": whats, "error": type(e).__name__,
                                       "message": str(e)[:300], "where": traceback.format_exc(limit=-3)[-600:]})
        elapsed = time.perf_counter() - start
        report["slowest_s"] = max(report["slowest_s"], elapsed)
        if outcome != "failure":
            report[outcome] += 1
        for what in whats:
            kind = what.split(" ")[0]
            report["kinds"][kind] = report["kinds"].get(kind, 0) + 1
        if verbose and (i + 1) % 500 == 0:
            print(f"{i + 1} cases, {len(report['failures'])} failures", file=sys.stderr)
    report["max_rss_growth_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    report["refusals"] = dict(sorted(report["refusals"].items(), key=lambda kv: -kv[1]))
    return report


def main(argv=None) -> int:
    import tempfile
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        report = run(args.seed, args.count, Path(folder), verbose=True)
    report["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(report, indent=1))
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
