"""A seeded fuzz run over the image decoder and the command line (recorded in tests/fuzz/cli.md).

    python -m tests.fuzz.fuzz_cli --decoder 5000 --cli 300 --seed 24     # from the repository root

Decoder: small valid PNG, JPEG, GIF, BMP, TIFF and WebP files (and EPS), mutated (bytes flipped,
cut short, chunks repeated, header sizes raised, random bytes spliced in), fed to
``image_from_bytes``. An outcome is "decoded" (an (H, W, 3) uint8 array), "refused" (a
MinicnnError) or "crash" (anything else). Command line: random commands with random option values
(negative, huge, NaN, infinite, empty, not numbers), weird paths (over 255 bytes, devices, FIFOs,
folders, mutated images under image names); an outcome is "ok" (status 0), "refused" (status 2 and
one stderr line without a traceback) or "crash". Each case has a time limit (no hang) and the run
reports its peak RSS (no run-away memory).
"""

from __future__ import annotations

import io
import os
import random
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from minicnn.errors import MinicnnError

FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n"


def seeds(rng: random.Random) -> list[bytes]:
    """Small valid files of every accepted format, in several modes."""
    arr = np.asarray(rng.choices(range(256), k=12 * 9 * 4), dtype=np.uint8).reshape(12, 9, 4)
    out = []
    for fmt in FORMATS:
        for mode in ("RGB", "RGBA", "L", "P"):
            im = Image.fromarray(arr, "RGBA").convert(mode)
            if fmt == "JPEG" and mode in ("RGBA", "P"):
                im = im.convert("RGB")
            if fmt == "BMP" and mode == "RGBA":
                im = im.convert("RGB")
            buf = io.BytesIO()
            im.save(buf, format=fmt)
            out.append(buf.getvalue())
    return out + [EPS]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random mutation of ``data``."""
    b = bytearray(data)
    kind = rng.randrange(6)
    if kind == 0 and b:                                    # flip some bytes
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == 1:                                        # cut short
        b = b[:rng.randrange(len(b) + 1)]
    elif kind == 2 and len(b) > 8:                         # repeat a slice
        i = rng.randrange(len(b) - 4)
        j = min(len(b), i + rng.randint(1, 64))
        b[j:j] = b[i:j] * rng.randint(1, 50)
    elif kind == 3 and len(b) > 24:                        # raise what is likely a size field
        i = rng.randrange(8, min(len(b) - 4, 40))
        b[i:i + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x00\x00\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x01\x00\x00"])
    elif kind == 4:                                        # splice random bytes in
        i = rng.randrange(len(b) + 1)
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
    else:                                                  # another format's header on this body
        b[:8] = rng.choice([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0\x00\x10JF", b"GIF89a\x08\x00",
                            b"BM\x00\x00\x00\x00\x00\x00", b"II*\x00\x08\x00\x00\x00", b"RIFF\x00\x00\x00\x00",
                            b"%!PS-Ado", b"\xc5\xd0\xd3\xc6\x00\x00\x00\x00"])
    return bytes(b)


def fuzz_decoder(cases: int, seed: int) -> dict:
    """Feed ``cases`` mutated images to image_from_bytes; count the outcomes (crash: a list of descriptions)."""
    import warnings

    from minicnn.inputs.images import image_from_bytes
    rng = random.Random(seed)
    pool = seeds(rng)
    outcomes = {"decoded": 0, "refused": 0, "crash": []}
    for i in range(cases):
        data = pool[rng.randrange(len(pool))]
        for _ in range(rng.randint(1, 3)):
            data = mutate(data, rng)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                img = image_from_bytes(data, max_pixels=4_000_000)
            assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
            outcomes["decoded"] += 1
        except MinicnnError:
            outcomes["refused"] += 1
        except BaseException as e:   # noqa: BLE001 - anything else is what the run looks for
            outcomes["crash"].append(f"case {i}: {type(e).__name__}: {e} (first bytes {data[:12]!r})")
    return outcomes


NUMBERS = ["-1", "0", "1", "2", "3", "-0", "1e308", "-1e308", "inf", "-inf", "nan", "1e-320", "", "x", "0x10",
           "18446744073709551616", "-9223372036854775809", "1_0", " 2", "3.5"]
METHODS = ["gradcam", "smoothgrad", "integrated-gradients", "lrp-epsilon", "lrp-epsilon-gamma-box", "occlusion",
           "saliency", "bogus", "", ",", "gradcam,gradcam", "all,bogus"]


def weird_paths(rng: random.Random, folder: Path, pool: list[bytes]) -> str:
    """A path a user might (mis)type: too long, a device, a FIFO, a folder, missing, or a mutated image."""
    kind = rng.randrange(8)
    if kind == 0:
        return "p" * rng.choice([255, 256, 300, 5000])
    if kind == 1:
        return rng.choice(["/dev/zero", "/dev/null", "/dev/full", "/proc/self/status", "/", ".", ""])
    if kind == 2:
        return str(folder / "fifo")
    if kind == 3:
        return str(folder)
    if kind == 4:
        return str(folder / "missing" / "x.png")
    name = folder / f"case{rng.randrange(10**9)}{rng.choice(['.png', '.jpg', '.gif', '.eps', '.npz', '.json', ''])}"
    name.write_bytes(mutate(pool[rng.randrange(len(pool))], rng))
    return str(name)


def random_argv(rng: random.Random, folder: Path, pool: list[bytes], image: str) -> list[str]:
    """One random command line (every command that reads user input, options drawn at random)."""
    path = lambda: weird_paths(rng, folder, pool)  # noqa: E731
    num = lambda: rng.choice(NUMBERS)              # noqa: E731
    model = ["--model", rng.choice(["resnet20_cifar10", "resnet20_cifar10", "bogus"]) if rng.random() < 0.8 else path()]
    cmd = rng.choice(["explain"] * 6 + ["image"] * 6
                     + ["evaluate", "layers", "convert", "sanity", "scorecard", "bench"])
    if cmd == "image":                                     # a mutated image under an image's name
        name = folder / f"m{rng.randrange(10**9)}{rng.choice(['.png', '.jpg', '.tif', '.gif', '.webp', '.bmp'])}"
        data = pool[rng.randrange(len(pool))]
        for _ in range(rng.randint(1, 3)):
            data = mutate(data, rng)
        name.write_bytes(data)
        return ["explain", str(name), "--model", "resnet20_cifar10",
                "--out", str(folder / f"o{rng.randrange(10**9)}.png")]
    if cmd == "explain":
        argv = ["explain", image if rng.random() < 0.5 else path(), *model, "--method", rng.choice(METHODS)]
        for flag in rng.sample(["--seed", "--samples", "--noise-level", "--epsilon", "--gamma", "--steps", "--top",
                                "--max-pixels", "--max-input-pixels", "--target", "--layer"], rng.randint(0, 3)):
            argv += [flag, num()]
        argv += ["--out", path() if rng.random() < 0.3 else str(folder / f"o{rng.randrange(10**9)}.png")]
        return argv
    if cmd == "evaluate":
        return ["evaluate", *model, "--data", path(), "--batch-size", num(), "--limit", num()]
    if cmd == "layers":
        return ["layers", *model]
    if cmd == "convert":
        return ["convert", path(), "--arch", rng.choice(["resnet20", "bogus"]), "--out", path(),
                rng.choice(["--meta", "--labels"]), path()]
    if cmd == "bench":
        return ["bench", "--models", rng.choice(["bogus", ",", "", path()]), "--reps", num(), "--quick",
                "--no-memory", "--keep-env"]
    return [cmd, *model, "--seed", num(), "--images", rng.choice(["-1", "0", "x"]), "--out" if cmd == "sanity"
            else "--out-dir", path()]


def fuzz_cli(cases: int, seed: int, capsys=None, time_limit: int | None = None) -> dict:
    """Run ``cases`` random command lines in-process; count ok / refused / crash.

    With pytest's ``capsys`` the output is read from it; otherwise stdout and stderr are
    redirected to files for each case. ``time_limit`` seconds per case (SIGALRM) catches a hang.
    """
    from minicnn.commands import cli
    rng = random.Random(seed)
    pool = seeds(rng)
    outcomes = {"ok": 0, "refused": 0, "crash": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.mkfifo(folder / "fifo")
        image = folder / "cat.png"
        image.write_bytes(pool[0])
        for i in range(cases):
            argv = random_argv(rng, folder, pool, str(image))
            code, err = _run(cli, argv, capsys, time_limit)
            one_line = err.count("\n") == 1 and err.startswith("minicnn: error: ") and "Traceback" not in err
            if code == 0 and "Traceback" not in err:
                outcomes["ok"] += 1
            elif code == 2 and one_line:
                outcomes["refused"] += 1
            else:
                outcomes["crash"].append(f"case {i}: {argv!r} -> {code}: {err.strip()[-300:]}")
    return outcomes


def _run(cli, argv, capsys, time_limit):
    def alarm(signum, frame):
        raise TimeoutError(f"no answer in {time_limit} s")
    if time_limit:
        signal.signal(signal.SIGALRM, alarm)
        signal.alarm(time_limit)
    try:
        if capsys is not None:
            try:
                code = cli.main(argv)
            except BaseException as e:  # noqa: BLE001
                code, extra = None, f"{type(e).__name__}: {e}\n"
            else:
                extra = ""
            return code, capsys.readouterr().err + extra
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            saved = sys.stdout, sys.stderr
            sys.stdout, sys.stderr = out, err
            try:
                code = cli.main(argv)
            except BaseException as e:  # noqa: BLE001
                code = None
                err.write(f"Traceback-less escape {type(e).__name__}: {e}\n")
            finally:
                sys.stdout, sys.stderr = saved
            err.seek(0)
            return code, err.read()
    finally:
        if time_limit:
            signal.alarm(0)


def main() -> None:
    import argparse
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--decoder", type=int, default=5000)
    p.add_argument("--cli", type=int, default=300)
    p.add_argument("--seed", type=int, default=24)
    p.add_argument("--time-limit", type=int, default=120)
    args = p.parse_args()
    began = time.perf_counter()
    d = fuzz_decoder(args.decoder, args.seed)
    print(f"decoder: {args.decoder} cases, seed {args.seed}: {d['decoded']} decoded, {d['refused']} refused, "
          f"{len(d['crash'])} crashes ({time.perf_counter() - began:.0f} s)")
    for c in d["crash"][:20]:
        print("  ", c)
    began = time.perf_counter()
    c = fuzz_cli(args.cli, args.seed, time_limit=args.time_limit)
    print(f"cli: {args.cli} cases, seed {args.seed}: {c['ok']} ok, {c['refused']} refused, {len(c['crash'])} "
          f"crashes ({time.perf_counter() - began:.0f} s)")
    for x in c["crash"][:40]:
        print("  ", x)
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
