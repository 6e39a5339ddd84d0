"""Bad images, end to end: refused in one line (missing, not an image, truncated, bombs, files that are not
regular, inputs too large for the network), or converted (grey, alpha, palette, 16-bit, CMYK, EXIF rotation,
GIF frames). The tables' rows and their check are in ``refusals.py``.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from refusals import (
    _PNG,
    Case,
    check_refusal,
    explain_argv,
    params,
    png_bytes,
    png_claiming,
    resnet,  # noqa: F401  (fixtures)
)

import minicnn
from minicnn.commands import cli
from minicnn.errors import ImageError, InputError
from minicnn.inputs.images import ImageWarning, load_image
from minicnn.inputs.preprocess import preprocess

# ================================================================ images

def image_file(name, data: bytes):
    def make(tmp, _):
        path = tmp / name
        path.write_bytes(data)
        return explain_argv(path, tmp), lambda: load_image(path)
    return make


def _missing(tmp, _):
    return explain_argv(tmp / "none.jpg", tmp), lambda: load_image(tmp / "none.jpg")


def _folder(tmp, _):
    (tmp / "pics").mkdir()
    return explain_argv(tmp / "pics", tmp), lambda: load_image(tmp / "pics")


def _dataset_with_a_broken_image(tmp, _):
    from minicnn.inputs.datasets import open_dataset
    for cls in ("cat", "dog"):
        (tmp / "pets" / "test" / cls).mkdir(parents=True)
        (tmp / "pets" / "test" / cls / "0.png").write_bytes(png_bytes(Image.new("RGB", (32, 32), (9, 9, 9))))
    (tmp / "pets" / "test" / "dog" / "1.png").write_bytes(_PNG[: len(_PNG) // 2])  # cut short
    return (["evaluate", "--model", "resnet20_cifar10", "--data", tmp / "pets"],
            lambda: list(open_dataset(tmp / "pets", "test").batches(200)))


def with_xmp(png: bytes, compressed_bytes: int = 2_000_000) -> bytes:
    """``png`` with an iTXt chunk after IHDR holding about ``compressed_bytes`` of zlib-compressed XMP text."""
    text = np.random.default_rng(5).bytes(compressed_bytes).hex().encode()  # hex: compresses to about half
    data = b"XML:com.adobe.xmp\0" + b"\x01\x00" + b"\0" + b"\0" + zlib.compress(text, 1)
    chunk = struct.pack(">I", len(data)) + b"iTXt" + data + struct.pack(">I", zlib.crc32(b"iTXt" + data))
    end_of_ihdr = 8 + 4 + 4 + 13 + 4
    return png[:end_of_ihdr] + chunk + png[end_of_ihdr:]


def _non_regular(path):
    def make(tmp, _):
        return explain_argv(path, tmp), lambda: load_image(path)
    return make


def _fifo(tmp, _):
    os.mkfifo(tmp / "pipe.png")  # reading it would wait for a writer forever
    return explain_argv(tmp / "pipe.png", tmp), lambda: load_image(tmp / "pipe.png")


def _strip(width, height):
    """A 1x10000 image: resnet20_cifar10 resizes its shorter side to 32, so it would enter as 32x320000."""
    def make(tmp, _):
        path = tmp / "strip.png"
        path.write_bytes(png_bytes(Image.new("RGB", (width, height), (9, 9, 9))))

        def api():
            return preprocess(load_image(path), minicnn.load("resnet20_cifar10").meta["preprocessing"])
        return explain_argv(path, tmp, model="resnet20_cifar10"), api
    return make


def _over_max_pixels_flag(tmp, _):
    path = tmp / "small.png"
    path.write_bytes(png_bytes(Image.new("RGB", (20, 10), (9, 9, 9))))
    return explain_argv(path, tmp, "--max-pixels", 100), lambda: load_image(path, max_pixels=100)


_JPEG = png_bytes(Image.fromarray(np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)), "JPEG")

IMAGE_REFUSALS = [
    Case("missing", _missing, ImageError, ("image file not found", "none.jpg")),
    Case("folder", _folder, ImageError, ("is a directory, not an image file",)),
    Case("not-an-image", image_file("notes.jpg", b"shopping list: milk"), ImageError,
         ("notes.jpg is not an image file Pillow can read", "first bytes b'shopping'")),
    Case("empty", image_file("empty.png", b""), ImageError, ("empty.png is empty (0 bytes), not an image",)),
    Case("truncated-png", image_file("cut.png", _PNG[: len(_PNG) // 2]), ImageError,
         ("cut.png: the file is truncated or corrupt",)),
    Case("truncated-jpeg", image_file("cut.jpg", _JPEG[: len(_JPEG) // 2]), ImageError,
         ("cut.jpg: the file is truncated or corrupt",)),
    Case("broken-image-in-a-dataset", _dataset_with_a_broken_image, ImageError,
         ("dog/1.png: the file is truncated or corrupt",)),
    Case("bomb-over-minicnn-limit", image_file("bomb.png", png_claiming(9000, 9000)), ImageError,
         ("bomb.png is 9000 wide x 9000 high = 81000000 pixels, over the limit of 64000000 pixels",
          "decompression bomb", "max_pixels", "minicnn explain --max-pixels N")),
    Case("bomb-carrying-large-xmp", image_file("bomb.png", with_xmp(png_claiming(9000, 9000))), ImageError,
         ("bomb.png is 9000 wide x 9000 high = 81000000 pixels, over the limit of 64000000 pixels",)),
    Case("over-the-max-pixels-flag", _over_max_pixels_flag, ImageError,
         ("small.png is 20 wide x 10 high = 200 pixels, over the limit of 100 pixels",)),
    Case("dev-zero", _non_regular("/dev/zero"), ImageError,
         ("/dev/zero is not a regular file (a device, pipe or socket); save the image to a file first",)),
    Case("fifo", _fifo, ImageError, ("pipe.png is not a regular file",)),
    Case("network-input-too-wide", _strip(10000, 1), InputError,
         ("the image (10000 wide x 1 high) would enter the network as 320000 wide x 32 high = 10240000 pixels "
          "(its shorter side resized to 32), over the limit of 262144", "--max-input-pixels N")),
    Case("network-input-too-tall", _strip(1, 10000), InputError,
         ("the image (1 wide x 10000 high) would enter the network as 32 wide x 320000 high = 10240000 pixels",)),
    Case("bomb-over-pillow-limit", image_file("huge.png", png_claiming(30000, 30000)), ImageError,
         ("huge.png is 30000 wide x 30000 high = 900000000 pixels, over the limit of 64000000 pixels",)),
]


@pytest.mark.parametrize("case", params(IMAGE_REFUSALS))
def test_images_refused(case, tmp_path, monkeypatch, capsys):
    check_refusal(case, tmp_path, monkeypatch, capsys)


def test_png_with_megabytes_of_xmp_is_read_not_refused(tmp_path, capsys):
    """2 MB of compressed XMP in an iTXt chunk: Pillow alone calls it corrupt (MAX_TEXT_CHUNK); it is not pixels."""
    path = tmp_path / "xmp.png"
    path.write_bytes(with_xmp(_PNG))
    assert path.stat().st_size > 2_000_000
    assert np.array_equal(load_image(path), load_image(_write(tmp_path / "plain.png", _PNG)))
    assert cli.main(["explain", str(path), "--model", "resnet20_cifar10", "--out", str(tmp_path / "x.png")]) == 0
    assert "image: 30 wide x 20 high" in capsys.readouterr().out


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_image_files_over_the_byte_limit_are_refused_before_reading(tmp_path):
    path = _write(tmp_path / "a.png", _PNG)
    assert load_image(path, max_bytes=len(_PNG)).shape == (20, 30, 3)
    with pytest.raises(ImageError, match=rf"a.png is larger than the limit of {len(_PNG) - 1} bytes"):
        load_image(path, max_bytes=len(_PNG) - 1)


def test_the_network_input_limit_can_be_raised(resnet):
    strip = np.zeros((1, 1000, 3), np.uint8)  # 32x32000 = 1024000 pixels after the resize
    with pytest.raises(InputError, match="over the limit of 262144"):
        preprocess(strip, resnet.meta["preprocessing"])
    assert preprocess(strip, resnet.meta["preprocessing"], max_input_pixels=1_100_000).shape == (1, 3, 32, 32000)
    crop = {"mean": [0.5] * 3, "std": [0.5] * 3, "resize": "shorter_then_center_crop", "size": [224, 224],
            "resize_shorter": 256}  # the resize before the crop is bounded too
    with pytest.raises(InputError,
                       match="would be resized to 2560000 wide x 256 high = 655360000 pixels before its centre crop"):
        preprocess(np.zeros((1, 10000, 3), np.uint8), crop)


def _exif_rotated():
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 8 wide x 4 high, displayed rotated 90 degrees clockwise: 4 wide x 8 high
    im = Image.new("RGB", (8, 4), (250, 0, 0))
    im.paste((0, 0, 250), (0, 0, 1, 4))  # the stored left column becomes the displayed top row
    return png_bytes(im, "PNG", exif=exif)  # PNG keeps the pixels exact; JPEG's own case is in test_images


def _gif():
    frames = [Image.new("RGB", (10, 12), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    return png_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:])


def _palette():
    im = Image.new("P", (7, 5))
    im.putpalette([10, 20, 30] + [0] * 765)
    return png_bytes(im)


# (name, file bytes, displayed (H, W), one RGB pixel the array must hold at [0, 0])
IMAGE_CONVERSIONS = [
    ("gray.png", png_bytes(Image.new("L", (6, 5), 77)), (5, 6), (77, 77, 77)),
    ("rgba.png", png_bytes(Image.new("RGBA", (6, 5), (255, 0, 0, 0))), (5, 6), (255, 255, 255)),  # over white
    ("la.png", png_bytes(Image.new("LA", (6, 5), (0, 255))), (5, 6), (0, 0, 0)),
    ("palette.png", _palette(), (5, 7), (10, 20, 30)),
    ("16bit.png", png_bytes(Image.fromarray(np.full((5, 6), 65535, np.uint16))), (5, 6), (255, 255, 255)),
    ("cmyk.jpg", png_bytes(Image.new("CMYK", (6, 5), (0, 0, 0, 0)), "JPEG", quality=95), (5, 6), (255, 255, 255)),
    ("rotated.png", _exif_rotated(), (8, 4), (0, 0, 250)),
    ("one_pixel.png", png_bytes(Image.new("RGB", (1, 1), (1, 2, 3))), (1, 1), (1, 2, 3)),
    ("wide.png", png_bytes(Image.new("RGB", (50, 20), (9, 8, 7))), (20, 50), (9, 8, 7)),
    ("tall.png", png_bytes(Image.new("RGB", (3, 40), (9, 8, 7))), (40, 3), (9, 8, 7)),
    ("animated.gif", _gif(), (12, 10), (255, 0, 0)),
]


@pytest.mark.parametrize("name, data, shape, pixel", IMAGE_CONVERSIONS, ids=[c[0] for c in IMAGE_CONVERSIONS])
def test_images_converted_not_refused(name, data, shape, pixel, tmp_path, capsys):
    path = tmp_path / name
    path.write_bytes(data)
    code = cli.main(["explain", str(path), "--out", str(tmp_path / "out.png")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"image: {shape[1]} wide x {shape[0]} high" in out and (tmp_path / "out.png").is_file()
    note = [f"{path} has 3 frames; using the first frame only"] if name.endswith(".gif") else []
    assert err == "".join(f"minicnn: note: {n}\n" for n in note)  # the CLI's one line per warning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = load_image(path)
    assert [str(w.message) for w in caught if issubclass(w.category, ImageWarning)] == note
    assert a.shape == (*shape, 3) and a.dtype == np.uint8
    assert np.abs(a[0, 0].astype(int) - pixel).max() <= 3, a[0, 0]  # JPEG rounding
