"""What every converter does with the user's metadata: merge it, and check its class list against the outputs."""

from __future__ import annotations

from ...errors import InputError


def with_user_meta(out: dict, meta: dict | None, n_classes: int, what: str) -> dict:
    """``out`` updated by the user's ``meta`` (provenance entries merged), its class list checked against the outputs.

    ``what`` names the outputs in the one-line error ("the checkpoint's classifier", "the model").
    """
    meta = dict(meta or {})
    if not isinstance(meta.get("provenance") or {}, dict):
        raise InputError(f"--meta: 'provenance' must be a table; got {meta['provenance']!r:.60}")
    provenance = {**(out.get("provenance") or {}), **(meta.pop("provenance", None) or {})}
    out.update(meta)
    if provenance:
        out["provenance"] = provenance
    classes = out.get("classes")
    if not isinstance(classes, list) or len(classes) != n_classes:
        raise InputError(f"the metadata lists {len(classes) if isinstance(classes, list) else classes!r} class "
                         f"names but {what} has {n_classes} outputs")
    out["classes"] = [str(c) for c in classes]
    return out
