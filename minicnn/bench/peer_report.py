"""The report of ``minicnn bench --peers``: the table (plain text) and the JSON."""

from __future__ import annotations

from .report import _ms


def peer_table(info: dict, results: dict) -> str:
    """The comparison as plain text: header, one line per (method, peer), the notes."""
    libraries = ", ".join(f"{lib} {v}" if v else f"{lib} not installed" for lib, v in info.get("libraries", {}).items())
    lines = [f"minicnn bench --peers, {info['date']}",
             f"machine: {info['cpu']}, {info['cores']} cores; Python {info['python']}; numpy {info['numpy']}, "
             f"{info['threads']} threads; torch {info.get('torch')} ({info.get('torch_threads')} threads)",
             f"peers: {libraries}",
             f"image: {info.get('image')}; each method's defaults, its default layer, the predicted class"]
    if info.get("load_before") is not None:
        lines.append(f"load average (1 min): {info['load_before']} before, {info.get('load_after')} after "
                     f"(on {info['cores']} cores)")
    if info.get("stand_ins"):
        lines.append(f"stand-ins for absent packages: {', '.join(info['stand_ins'])} "
                     "(see minicnn.bench.peer_libraries)")
    lines.append(f"time per call: median (min-max) of {info['reps']} repetitions after a warm-up, minicnn and its "
                 "peers alternating; ratio: median of minicnn / peer over the repetitions")
    lines.append("")
    head = ("model/method", "peer", "minicnn", "peer time", "ratio", "minicnn MiB", "peer MiB")
    rows = [head]

    def mib(r, prefix):
        return f"{r[prefix + 'peak_mib']:.0f} (+{max(0.0, r[prefix + 'op_mib']):.0f})" if prefix + "peak_mib" in r \
            else "-"

    for key, r in results.items():
        if "skipped" in r:
            rows.append((key, "-", "-", "-", "-", "-", "-"))
            continue
        mine = _ms(r["minicnn_s"], r["minicnn_min_s"], r["minicnn_max_s"])
        first = True
        for label, p in r["peers"].items():
            rows.append((key if first else "", label, mine if first else "", _ms(p["s"], p["min_s"], p["max_s"]),
                         f"{p['ratio']:.2f}x", mib(r, "minicnn_") if first else "", mib(p, "")))
            first = False
        for label in r.get("absent", []):
            rows.append((key if first else "", label, mine if first else "", "unavailable", "-",
                         mib(r, "minicnn_") if first else "", "-"))
            first = False
        if first:
            rows.append((key, "no peer", mine, "-", "-", mib(r, "minicnn_"), "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]) for i, cell in enumerate(row)))
        if n == 0:
            lines.append("-" * len(lines[-1]))
    for key, r in results.items():
        if "skipped" in r:
            lines.append(f"note: {key} not timed: {r['skipped']}")
    for note in info.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)


def peer_json(info: dict, results: dict) -> dict:
    """{"model/method": {...}, ...} plus "_meta" (date, machine, versions, notes)."""
    return {**results, "_meta": info}
