"""Making bad weights files from good ones: read a file's members, change them, write them back.

A weights file is a zip of .npy members (``minicnn/models/weights.py``). ``members(path)``
gives its members in order as (zip name, bytes); ``write(path, members)`` writes
any list of them, duplicates included; ``npy(array)`` is an array's member bytes;
``meta_of`` / ``with_meta`` read and replace the ``__meta__`` JSON; ``find(spec, path)``
is the description of one layer inside a spec, by its PyTorch path.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "weights"


def members(path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as z:
        return [(info.filename, z.read(info)) for info in z.infolist()]


def write(path, items, compression=zipfile.ZIP_STORED) -> Path:
    """A zip of ``items`` [(name, bytes)], in order; a name may come twice."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                       # zipfile warns of a duplicate name
        with zipfile.ZipFile(path, "w", compression) as z:
            for name, data in items:
                z.writestr(name, data)
    return Path(path)


def npy(array, **kw) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(array), allow_pickle=kw.pop("allow_pickle", False), **kw)
    return buf.getvalue()


def meta_of(items) -> dict:
    raw = dict(items)["__meta__.npy"]
    return json.loads(np.load(io.BytesIO(raw)).tobytes().decode("utf-8"))


def meta_bytes(meta: dict) -> bytes:
    # json.dumps: NaN allowed, as a hostile writer may
    return npy(np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8))


def with_meta(items, meta: dict):
    return [(n, meta_bytes(meta) if n == "__meta__.npy" else d) for n, d in items]


def replaced(items, name: str, data: bytes):
    """``items`` with member ``name`` (``key`` or ``key.npy``) replaced by ``data``."""
    name = name if name.endswith(".npy") else f"{name}.npy"
    assert name in dict(items), name
    return [(n, data if n == name else d) for n, d in items]


def array_of(items, key: str) -> np.ndarray:
    return np.load(io.BytesIO(dict(items)[f"{key}.npy"]))


def find(spec: dict, path: str) -> dict:
    """The description of layer ``path`` ("layer1.0", "features.3") inside ``spec``."""
    node = spec
    for part in path.split("."):
        node = dict((n, c) for n, c in node["children"])[part]
    return node


def leaves(spec: dict, path: str = ""):
    """(path, description) of every layer description in ``spec`` that is not a Sequential."""
    if not isinstance(spec, dict):
        return
    if spec.get("type") == "Sequential" and isinstance(spec.get("children"), list):
        for pair in spec["children"]:
            if isinstance(pair, list) and len(pair) == 2:
                yield from leaves(pair[1], f"{path}.{pair[0]}" if path else str(pair[0]))
    else:
        yield path, spec
