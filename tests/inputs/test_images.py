"""Image loading (every odd kind of file), preprocessing and the shipped samples."""

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, features

from minicnn.errors import ImageError, InputError, UnknownNameError
from minicnn.inputs.images import ImageWarning, image_from_bytes, load_image, to_rgb
from minicnn.inputs.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    check_preprocessing,
    deprocess,
    preprocess,
    side_by_side,
)
from minicnn.inputs.samples import DATA_DIR, data_path, load_sample, sample_images

RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, (6, 9, 3), dtype=np.uint8)
GRAY = RNG.integers(0, 256, (6, 9), dtype=np.uint8)


def _save(im: Image.Image, path, fmt=None, **kw):
    im.save(path, fmt, **kw)
    return path


def _frames(n, size=(8, 6)):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    return [Image.new("RGB", size, colours[k % 4]) for k in range(n)]


# ---------------------------------------------------------------------------
# Conversions: each case builds a file in tmp_path and states the expected array.


def case_rgb_png(tmp):
    return _save(Image.fromarray(RGB), tmp / "a.png"), RGB


def case_gray_l(tmp):
    return _save(Image.fromarray(GRAY), tmp / "g.png"), np.repeat(GRAY[..., None], 3, axis=2)


def case_one_bit(tmp):
    bits = GRAY > 127
    im = Image.fromarray(bits)
    assert im.mode == "1"
    return _save(im, tmp / "b.png"), np.repeat(np.where(bits, 255, 0).astype(np.uint8)[..., None], 3, axis=2)


def _over_white(rgb, alpha):
    rgb, alpha = rgb.astype(np.int64), alpha.astype(np.int64)[..., None]
    return ((rgb * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)


def case_rgba(tmp):
    alpha = np.array([0, 128, 255] * 18, dtype=np.uint8).reshape(6, 9)
    im = Image.fromarray(np.dstack([RGB, alpha]))
    return _save(im, tmp / "rgba.png"), _over_white(RGB, alpha)


def case_la(tmp):
    alpha = np.array([0, 64, 255] * 18, dtype=np.uint8).reshape(6, 9)
    im = Image.merge("LA", [Image.fromarray(GRAY), Image.fromarray(alpha)])
    return _save(im, tmp / "la.png"), _over_white(np.repeat(GRAY[..., None], 3, axis=2), alpha)


def case_palette_with_transparency(tmp):
    idx = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    im = Image.new("P", (3, 2))
    im.putdata(idx.ravel().tolist())
    im.putpalette([200, 10, 10, 10, 200, 10, 10, 10, 200] + [0] * (3 * 253))
    _save(im, tmp / "p.png", transparency=1)
    pal = np.array([[200, 10, 10], [255, 255, 255], [10, 10, 200]], dtype=np.uint8)
    return tmp / "p.png", pal[idx]


def case_palette_opaque_gif(tmp):
    im = Image.new("P", (2, 1))
    im.putpalette([1, 2, 3, 250, 251, 252] + [0] * 762)
    im.putdata([0, 1])
    return _save(im, tmp / "p.gif"), np.array([[[1, 2, 3], [250, 251, 252]]], dtype=np.uint8)


V16 = np.array([[0, 257, 32768, 65535], [128, 129, 65534, 1000]], dtype=np.uint16)
V16_AS_8 = np.round(V16 / 257).astype(np.uint8)  # 0, 1, 128, 255 / 0, 1, 255, 4


def case_png_16bit(tmp):
    im = Image.fromarray(V16)
    assert im.mode == "I;16"
    return _save(im, tmp / "16.png"), np.repeat(V16_AS_8[..., None], 3, axis=2)


def case_tiff_16bit_big_endian(tmp):
    im = Image.fromarray(V16.astype(">u2"))
    assert im.mode == "I;16B"
    return _save(im, tmp / "16b.tif"), np.repeat(V16_AS_8[..., None], 3, axis=2)


def case_tiff_mode_i(tmp):
    im = Image.fromarray(V16.astype(np.int32))
    assert im.mode == "I"
    return _save(im, tmp / "i.tif"), np.repeat(V16_AS_8[..., None], 3, axis=2)


def case_tiff_mode_i_signed(tmp):
    v = np.array([[-1000, 0, 1000]], dtype=np.int32)
    return _save(Image.fromarray(v), tmp / "is.tif"), np.repeat(np.array([[0, 128, 255]], np.uint8)[..., None], 3, 2)


def case_tiff_float_unit(tmp):
    v = np.array([[0.0, 0.5, 1.0], [0.25, 0.75, 0.1]], dtype=np.float32)
    im = Image.fromarray(v)
    assert im.mode == "F"
    return _save(im, tmp / "f.tif"), np.repeat(np.round(v * 255).astype(np.uint8)[..., None], 3, axis=2)


def case_tiff_float_wide(tmp):
    v = np.array([[-2.0, 0.0, 2.0]], dtype=np.float32)
    return _save(Image.fromarray(v), tmp / "fw.tif"), np.repeat(np.array([[0, 128, 255]], np.uint8)[..., None], 3, 2)


def case_cmyk_jpeg(tmp):
    im = Image.new("CMYK", (8, 8), (0, 0, 0, 0))  # no ink: white
    im.paste((255, 0, 0, 0), (0, 0, 4, 8))  # full cyan on the left: (0, 255, 255)
    path = _save(im, tmp / "cmyk.jpg", quality=95)
    assert Image.open(path).mode == "CMYK"
    want = np.full((8, 8, 3), 255, np.uint8)
    want[:, :4] = (0, 255, 255)
    return path, want


def case_cmyk_tiff(tmp):
    im = Image.new("CMYK", (2, 1), (0, 0, 0, 0))
    im.putpixel((1, 0), (0, 0, 0, 255))
    return _save(im, tmp / "cmyk.tif"), np.array([[[255, 255, 255], [0, 0, 0]]], np.uint8)


def case_one_pixel(tmp):
    return _save(Image.new("RGB", (1, 1), (9, 8, 7)), tmp / "1.png"), np.array([[[9, 8, 7]]], np.uint8)


def case_tall_thin(tmp):
    a = RNG.integers(0, 256, (13, 2, 3), dtype=np.uint8)
    return _save(Image.fromarray(a), tmp / "tall.bmp"), a


CONVERSIONS = [case_rgb_png, case_gray_l, case_one_bit, case_rgba, case_la, case_palette_with_transparency,
               case_palette_opaque_gif, case_png_16bit, case_tiff_16bit_big_endian, case_tiff_mode_i,
               case_tiff_mode_i_signed, case_tiff_float_unit, case_tiff_float_wide, case_cmyk_jpeg, case_cmyk_tiff,
               case_one_pixel, case_tall_thin]


@pytest.mark.parametrize("case", CONVERSIONS, ids=lambda c: c.__name__[5:])
def test_conversion(case, tmp_path):
    path, want = case(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none of these may warn
        got = load_image(path)
    assert got.dtype == np.uint8 and got.shape == want.shape and got.flags.c_contiguous
    tol = 3 if path.suffix == ".jpg" else 0
    np.testing.assert_allclose(got.astype(int), want.astype(int), atol=tol, rtol=0)


def test_load_accepts_str_path(tmp_path):
    path, want = case_rgb_png(tmp_path)
    np.testing.assert_array_equal(load_image(str(path)), want)


def test_exif_orientation_6_is_rotated(tmp_path):
    # stored 40 wide x 20 high, red block at the stored top-left corner
    a = np.full((20, 40, 3), 255, np.uint8)
    a[:8, :8] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = _save(Image.fromarray(a), tmp_path / "rot.jpg", exif=exif, quality=95)
    got = load_image(path)
    assert got.shape == (40, 20, 3)
    # clockwise: the stored top-left corner ends at the top-right
    assert (np.abs(got[:6, -6:].astype(int) - (255, 0, 0)) < 40).all()
    assert (got[-6:, :6] > 200).all()
    # without the tag the same pixels stay as stored
    path2 = _save(Image.fromarray(a), tmp_path / "plain.jpg", quality=95)
    assert load_image(path2).shape == (20, 40, 3)


ANIMATED = [("gif", {}), ("png", {}), ("webp", {"lossless": True})]


@pytest.mark.parametrize("fmt, kw", ANIMATED, ids=[a[0] for a in ANIMATED])
def test_animated_first_frame_with_warning(fmt, kw, tmp_path):
    if fmt == "webp" and not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    frames = _frames(3)
    path = tmp_path / f"anim.{fmt}"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0, **kw)
    with pytest.warns(ImageWarning, match="3 frames"):
        got = load_image(path)
    assert got.shape == (6, 8, 3)
    np.testing.assert_allclose(got.reshape(-1, 3).mean(axis=0), (255, 0, 0), atol=2)


def test_image_warning_is_a_user_warning():
    assert issubclass(ImageWarning, UserWarning)


# ---------------------------------------------------------------------------
# Refusals: one-line ImageError


def _png_header(w, h):
    """A PNG whose header claims w x h pixels (nothing that large is ever allocated)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
            + chunk(b"IEND", b""))


def _noise_bytes(fmt):
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


def bad_missing(tmp):
    return tmp / "nowhere" / "cat.png", "not found"


def bad_directory(tmp):
    (tmp / "folder.png").mkdir()
    return tmp / "folder.png", "directory"


def bad_empty(tmp):
    (tmp / "empty.png").write_bytes(b"")
    return tmp / "empty.png", "empty"


def bad_random_bytes(tmp):
    (tmp / "noise.jpg").write_bytes(np.random.default_rng(3).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    return tmp / "noise.jpg", "not an image"


def bad_text(tmp):
    (tmp / "notes.png").write_text("hello, not a picture\n")
    return tmp / "notes.png", "not an image"


def bad_truncated_png(tmp):
    data = _noise_bytes("PNG")
    (tmp / "cut.png").write_bytes(data[: len(data) // 2])
    return tmp / "cut.png", "truncated"


def bad_truncated_jpeg(tmp):
    data = _noise_bytes("JPEG")
    (tmp / "cut.jpg").write_bytes(data[: len(data) // 2])
    return tmp / "cut.jpg", "truncated"


def bad_truncated_header(tmp):
    (tmp / "head.png").write_bytes(_noise_bytes("PNG")[:20])
    return tmp / "head.png", "trunc"


def bad_bomb_huge(tmp):
    (tmp / "bomb.png").write_bytes(_png_header(100_000, 100_000))
    return tmp / "bomb.png", "100000 wide x 100000 high = 10000000000 pixels, over the limit of 64000000"


def bad_bomb_between_limits(tmp):
    # over minicnn's 64 MP limit, under Pillow's own error threshold
    (tmp / "bomb2.png").write_bytes(_png_header(9000, 8000))
    return tmp / "bomb2.png", "9000 wide x 8000 high = 72000000 pixels, over the limit"


BAD = [bad_missing, bad_directory, bad_empty, bad_random_bytes, bad_text, bad_truncated_png, bad_truncated_jpeg,
       bad_truncated_header, bad_bomb_huge, bad_bomb_between_limits]


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.__name__[4:])
def test_refusal(case, tmp_path):
    path, words = case(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning leaks out
        with pytest.raises(ImageError) as e:
            load_image(path)
    msg = str(e.value)
    assert "\n" not in msg
    assert words.lower() in msg.lower()
    assert path.name in msg


def test_refusal_happens_before_decoding(tmp_path):
    path, _ = case_rgb_png(tmp_path)  # 6 x 9 = 54 pixels
    with pytest.raises(ImageError, match="9 wide x 6 high = 54 pixels, over the limit of 50"):
        load_image(path, max_pixels=50)
    assert load_image(path, max_pixels=54).shape == (6, 9, 3)


def test_image_error_is_a_value_error(tmp_path):
    with pytest.raises(ValueError):
        load_image(tmp_path / "missing.png")


@pytest.mark.parametrize("bad", [0, -5, 1.5, "big", True])
def test_bad_max_pixels(bad, tmp_path):
    with pytest.raises(InputError):
        load_image(tmp_path / "x.png", max_pixels=bad)


def test_unconvertible_mode_is_an_image_error():
    with pytest.raises(ImageError, match="mode 'La'"):
        to_rgb(Image.new("La", (2, 2)))


def test_image_from_bytes_names_the_source():
    with pytest.raises(ImageError, match="member.png"):
        image_from_bytes(b"GIF89a-broken", name="member.png")
    assert image_from_bytes(_noise_bytes("PNG")).shape == (64, 64, 3)


# ---------------------------------------------------------------------------
# Preprocessing

CIFAR = {"mean": [0.4914, 0.4822, 0.4465], "std": [0.247, 0.243, 0.261], "resize": "exact", "size": [32, 32],
         "resize_shorter": None}
IMAGENET = {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "resize": "shorter_then_center_crop",
            "size": [224, 224], "resize_shorter": 256}
NONE = dict(CIFAR, resize="none", size=None)


def test_preprocess_normalises_per_channel():
    img = np.zeros((32, 32, 3), np.uint8)
    img[0, 0] = (255, 128, 0)
    x = preprocess(img, CIFAR)
    assert x.shape == (1, 3, 32, 32) and x.dtype == np.float32 and x.flags.c_contiguous
    for c, v in enumerate((255, 128, 0)):
        assert x[0, c, 0, 0] == pytest.approx((v / 255 - CIFAR["mean"][c]) / CIFAR["std"][c], abs=1e-6)
    assert preprocess(img, CIFAR, dtype=np.float64).dtype == np.float64


def test_preprocess_exact_resizes_with_pil_bilinear():
    img = RNG.integers(0, 256, (48, 40, 3), dtype=np.uint8)
    x = preprocess(img, CIFAR, dtype=np.float64)
    want = np.asarray(Image.fromarray(img).resize((32, 32), Image.Resampling.BILINEAR)) / 255.0
    np.testing.assert_allclose(deprocess(x[0], CIFAR), want, atol=1e-12)


def test_preprocess_imagenet_shorter_side_then_center_crop():
    img = load_image(data_path("images", "chelsea.png"))
    assert img.shape == (300, 451, 3)
    x = preprocess(img, IMAGENET, dtype=np.float64)
    assert x.shape == (1, 3, 224, 224)
    # shorter side 300 -> 256, longer 451 -> int(256 * 451 / 300) = 384; crop offsets 16 and 80
    big = np.asarray(Image.fromarray(img).resize((384, 256), Image.Resampling.BILINEAR))
    np.testing.assert_allclose(deprocess(x[0], IMAGENET), big[16:240, 80:304] / 255.0, atol=1e-12)


def test_preprocess_portrait_and_non_square_crop():
    img = RNG.integers(0, 256, (90, 60, 3), dtype=np.uint8)  # portrait: width is the shorter side
    p = dict(IMAGENET, size=[40, 30], resize_shorter=50)
    x = preprocess(img, p, dtype=np.float64)
    assert x.shape == (1, 3, 40, 30)
    big = np.asarray(Image.fromarray(img).resize((50, 75), Image.Resampling.BILINEAR))
    top, left = round((75 - 40) / 2), round((50 - 30) / 2)
    np.testing.assert_allclose(deprocess(x[0], p), big[top:top + 40, left:left + 30] / 255.0, atol=1e-12)


def test_preprocess_none_keeps_size_for_cat_and_dog():
    pair = side_by_side(load_sample("cat"), load_sample("dog"))
    assert pair.shape == (32, 64, 3) and pair.dtype == np.uint8
    np.testing.assert_array_equal(pair[:, :32], load_sample("cat"))
    x = preprocess(pair, NONE)
    assert x.shape == (1, 3, 32, 64)


def test_preprocess_list_and_batch_array_agree():
    imgs = [load_sample("ship", k) for k in range(3)]
    np.testing.assert_array_equal(preprocess(imgs, CIFAR), preprocess(np.stack(imgs), CIFAR))
    assert preprocess(tuple(imgs), CIFAR).shape == (3, 3, 32, 32)


def test_preprocess_none_with_mixed_sizes_is_refused():
    with pytest.raises(InputError, match="differ in size"):
        preprocess([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8)], NONE)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
def test_deprocess_inverts_preprocess(h, w, seed):
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    x = preprocess(img, NONE)
    back = deprocess(x[0], NONE)
    assert back.shape == (h, w, 3) and back.dtype == np.float32
    np.testing.assert_allclose(back, img / 255.0, atol=1e-6)
    np.testing.assert_allclose(deprocess(x, NONE), back)  # (1, 3, H, W) accepted too


def test_deprocess_clips_to_unit_range():
    out = deprocess(np.full((3, 2, 2), 100.0), CIFAR)
    assert out.max() == 1.0 and out.dtype == np.float64
    assert deprocess(np.full((3, 2, 2), -100.0), CIFAR).min() == 0.0


@pytest.mark.parametrize("p, words", [
    ({"std": [1, 1, 1], "resize": "exact", "size": [2, 2]}, "missing 'mean'"),
    (dict(CIFAR, mean=[0.5, 0.5]), "3 finite numbers"),
    (dict(CIFAR, std=[1, 0, 1]), "positive"),
    (dict(CIFAR, resize="stretch"), "one of exact"),
    (dict(CIFAR, size=[32]), "[H, W]"),
    (dict(CIFAR, size=None), "needs a size"),
    (dict(IMAGENET, resize_shorter=None), "resize_shorter"),
    (dict(IMAGENET, resize_shorter=200), "smaller than the crop"),
    ("imagenet", "must be a dict"),
])
def test_bad_preprocessing_description(p, words):
    with pytest.raises(InputError) as e:
        preprocess(np.zeros((32, 32, 3), np.uint8), p)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_check_preprocessing_normalises():
    p = check_preprocessing(dict(CIFAR, size=32, mean=(0.5, 0.5, 0.5)))
    assert p["size"] == [32, 32] and p["mean"] == [0.5, 0.5, 0.5]
    assert check_preprocessing(IMAGENET)["resize_shorter"] == 256


@pytest.mark.parametrize("img, words", [
    (np.zeros((8, 8, 3), np.float32), "uint8"),
    (np.zeros((8, 8), np.uint8), "(H, W, 3)"),
    (np.zeros((8, 8, 4), np.uint8), "(H, W, 3)"),
    ([np.zeros((8, 8, 3), np.uint8), "cat.png"], "use load_image"),
    ([], "empty"),
    ("cat.png", "expected an (H, W, 3)"),
])
def test_bad_images_for_preprocess(img, words):
    with pytest.raises(InputError) as e:
        preprocess(img, CIFAR)
    assert words in str(e.value)


def test_preprocess_dtype_must_be_float():
    with pytest.raises(InputError, match="float32 or float64"):
        preprocess(np.zeros((32, 32, 3), np.uint8), CIFAR, dtype=np.int32)


def test_side_by_side_needs_equal_heights():
    with pytest.raises(InputError, match="equal height"):
        side_by_side(np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4, 3), np.uint8))
    assert side_by_side(np.zeros((4, 2, 3), np.uint8), np.ones((4, 3, 3), np.uint8)).shape == (4, 5, 3)


# ---------------------------------------------------------------------------
# Shipped data

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_sample_images_are_shipped_with_the_package():
    samples = sample_images()
    assert len(samples) == 300
    assert sorted({c for _, c in samples}) == CIFAR_CLASSES
    assert all(path.is_relative_to(DATA_DIR) and path.suffix == ".jpg" for path, _ in samples)
    cats = sample_images("cat")
    assert len(cats) == 30 and all(c == "cat" for _, c in cats)
    assert [p.name for p, _ in cats] == sorted(p.name for p, _ in cats)


def test_every_sample_decodes_to_32x32():
    for path, _ in sample_images():
        assert load_image(path).shape == (32, 32, 3)


def test_load_sample_and_its_errors():
    assert load_sample("frog", 29).shape == (32, 32, 3)
    with pytest.raises(UnknownNameError, match="did you mean 'cat'"):
        sample_images("cats")
    with pytest.raises(InputError, match="0..29"):
        load_sample("frog", 30)
    with pytest.raises(InputError):
        load_sample("frog", -1)


def test_shipped_photographs_and_labels():
    assert load_image(data_path("images", "coffee.png")).shape == (400, 600, 3)
    lines = data_path("imagenet_classes.txt").read_text().splitlines()
    assert len(lines) == 1000 and lines[0] == "tench" and lines[281] == "tabby"
    assert data_path("cifar10_classes.txt").read_text().split() == CIFAR_CLASSES
    assert data_path("LICENSES.md").is_file()
    with pytest.raises(ImageError, match="no shipped data file"):
        data_path("images", "astronaut.png")


def test_shorter_mode_keeps_the_aspect_ratio_without_cropping():
    p = {"mean": [0.5] * 3, "std": [0.5] * 3, "resize": "shorter", "resize_shorter": 32, "size": [32, 32]}
    wide = np.zeros((32, 64, 3), np.uint8)                       # the cat|dog image stays as it is
    assert preprocess(wide, p).shape == (1, 3, 32, 64)
    photo = np.zeros((400, 600, 3), np.uint8)                     # a photo comes down to CIFAR scale
    assert preprocess(photo, p).shape == (1, 3, 32, 48)
    tall = np.zeros((90, 30, 3), np.uint8)
    assert preprocess(tall, p).shape == (1, 3, 96, 32)
