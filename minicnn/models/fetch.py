"""Download an official torchvision VGG checkpoint, verify it, convert it.

    minicnn fetch vgg16                 # -> vgg16.npz (and vgg16-397923af.pth beside it)
    minicnn fetch vgg16 --checkpoint ~/Downloads/vgg16-397923af.pth --out vgg16.npz

The checkpoint is streamed to a temporary file in the output folder while its
sha256 is computed, and renamed to its final name only if the digest starts
with the 8 hex digits in its file name ("vgg16-397923af.pth"). That prefix is
what torchvision itself checks (``torch.hub``, ``check_hash``); the full
digests are not published next to the files, so minicnn checks the same
prefix. An already-downloaded checkpoint with the right digest is reused.
Nothing is overwritten without ``--force``; the converted file is written
atomically too. Conversion needs PyTorch (see ``minicnn.models.convert.pytorch``).
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ..errors import ChecksumError, DownloadError, InputError, OutputError, unknown_name
from ..util.atomic import Outputs, atomic_output, check_writable, same_file, worded
from ..util.files import check_regular_file
from ..util.progress import Progress
from .convert.pytorch import convert_checkpoint, not_a_checkpoint
from .official import BASE_URL, CHECKPOINTS, IMAGENET_META
from .shipped import sha256_file
from .weights import save

_CHUNK = 1 << 20


def hash_prefix(file_name: str) -> str:
    """The sha256 prefix in a torchvision file name: "vgg16-397923af.pth" -> "397923af"."""
    stem = file_name.rsplit(".", 1)[0]
    return stem.rsplit("-", 1)[1].lower() if "-" in stem else ""


def check_digest(digest: str, expected: str, what) -> None:
    """ChecksumError unless ``digest`` starts with ``expected`` (a prefix or a full sha256)."""
    if not expected or not digest.startswith(expected.lower()):
        raise ChecksumError(f"{what} has sha256 {digest}, expected one starting with {expected}: "
                            f"the download is damaged or not the official file")


def download(url: str, dest, *, expected_sha256: str, force: bool = False, progress: bool = True,
             timeout: float = 60.0) -> Path:
    """Stream ``url`` to ``dest`` (atomically), checking its sha256 against ``expected_sha256``.

    ``expected_sha256`` is a full digest or a prefix of one. On a mismatch, a
    network error or a connection cut short, nothing is left at ``dest``.
    """
    scheme = urllib.parse.urlparse(url).scheme
    if scheme not in ("http", "https"):
        raise InputError(f"can only download http:// or https:// addresses; got {url!r}")
    dest = check_writable(dest, force=force)
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "minicnn"}),
                                          timeout=timeout)
    except urllib.error.HTTPError as e:
        raise DownloadError(f"downloading {url} failed: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise DownloadError(f"downloading {url} failed: {reason}") from None
    with response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        h, got = hashlib.sha256(), 0
        bar = Progress(total, f"downloading {dest.name}", unit="MB", enabled=progress,
                       fmt=lambda n: f"{n / 1e6:,.1f}")
        with bar, atomic_output(dest, force=force) as f:
            while True:
                try:
                    block = response.read(_CHUNK)
                except (OSError, ValueError) as e:
                    raise DownloadError(f"downloading {url} failed after {got:,} bytes: {e}") from None
                if not block:
                    break
                f.write(block)
                h.update(block)
                got += len(block)
                bar.update(len(block))
            if total is not None and got != total:
                raise DownloadError(f"downloading {url} stopped after {got:,} of {total:,} bytes; try again")
            check_digest(h.hexdigest(), expected_sha256, url)
    return dest


def fetch(name: str, *, out=None, url: str | None = None, checkpoint=None, force: bool = False,
          expected_sha256: str | None = None, progress: bool = True) -> Path:
    """Get the official ``name`` checkpoint (download, or ``checkpoint``), verify it, convert it to ``out``.

    ``url`` replaces the official address (a mirror: the same file is
    expected). Returns the path of the converted weights file.
    """
    if name not in CHECKPOINTS:
        raise unknown_name("checkpoint", name, list(CHECKPOINTS))
    file_name, arch = CHECKPOINTS[name]
    expected = (expected_sha256 or hash_prefix(file_name)).lower()
    outputs = Outputs(force=force)                   # the overwrite rule of every command; before any download
    if checkpoint is not None:
        outputs.input(checkpoint, "--checkpoint")
    out = outputs.output(out if out is not None else f"{name}.npz", "--out")
    if checkpoint is not None:
        ckpt = Path(os.fspath(checkpoint))
        if not ckpt.is_file():
            raise InputError(not_a_checkpoint(ckpt))
        check_digest(sha256_file(ckpt), expected, ckpt)
        source_url = url
    else:
        source_url = url or BASE_URL + file_name
        ckpt = out.parent / file_name
        if same_file(ckpt, out):
            raise OutputError(f"--out {out} is where the checkpoint {file_name} is downloaded to; "
                              f"choose another name")
        if ckpt.exists() and not force:
            check_regular_file(ckpt, None, "the downloaded checkpoint", InputError)   # never hash a pipe
            if not sha256_file(ckpt).startswith(expected):
                def text(force):
                    return (f"{ckpt} exists but its sha256 does not start with {expected}; delete it or pass {force} "
                            f"to download it again")
                raise worded(ChecksumError(text("force=True")), text("--force"))
            print(f"using {ckpt} (already downloaded, sha256 verified)")
        else:
            from .convert.pytorch import import_torch  # lazy: read at call time, so a patched one is used
            import_torch()                           # converting needs PyTorch: say so before any download
            download(source_url, ckpt, expected_sha256=expected, force=force, progress=progress)
    meta = {**IMAGENET_META, "name": name,
            "provenance": {"source_url": source_url or BASE_URL + file_name, "official_file": file_name,
                           "publisher": "torchvision (pytorch/vision)", "sha256_prefix_checked": expected}}
    model = convert_checkpoint(ckpt, arch, meta=meta)
    save(model, out, force=force)
    return out
