"""Specification of augkit.input.decoding: every file becomes RGB uint8 (H, W, 3) or a DecodeError.

All fixtures are generated here, so each test shows exactly what goes in.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import logging
import os
import pickle
import re
import struct
import subprocess
import sys
import threading
import tracemalloc
import warnings
import zlib

import cv2
import numpy as np
import pytest
import simplejpeg
from PIL import ExifTags, Image, ImageFile, ImageOps

from augkit.input import decoding
from augkit.core.errors import UsageError
from conftest import make_structured_rgb
from imagefiles import (
    damage_source,
    damaged_files,
    encoded,
    good_images,
    jpeg_damaged_mid_scan,
    jpeg_with_junk_before_end_marker,
    noisy_files,
    noisy_pillow_files,
    png_with_bad_idat_crc,
)
from imagefiles import png_claiming_size as png_with_size
from augkit.input.decoding import (
    DEFAULT_MAX_PIXELS,
    DecodeError,
    ImageInfo,
    decode_bytes,
    decode_image,
    decode_image_with_info,
    header_size,
)
from augkit.input.encoding import encode_image, write_image_atomic
from augkit.input.suffixes import IMAGE_SUFFIXES

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


@pytest.fixture(autouse=True)
def no_limit_from_the_environment(monkeypatch):
    monkeypatch.delenv("AUGKIT_MAX_IMAGE_PIXELS", raising=False)


# --- fixture builders ---------------------------------------------------------


def gradient(h: int = 48, w: int = 64) -> np.ndarray:
    """Smooth, asymmetric RGB content: lossy codecs stay close, and any flip,
    rotation or channel swap changes it."""
    y, x = np.mgrid[0:h, 0:w]
    channels = [x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (w + h - 2)]
    return np.stack(channels, -1).astype(np.uint8)


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int32) - b.astype(np.int32)).mean())


def decode_error(path_or_data, **kw) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        if isinstance(path_or_data, bytes):
            decode_bytes(path_or_data, **kw)
        else:
            decode_image(path_or_data, **kw)
    return info.value


# --- the output contract ------------------------------------------------------


@pytest.mark.parametrize(
    "suffix, fmt, tolerance",
    [("png", "PNG", 0), ("bmp", "BMP", 0), ("tif", "TIFF", 0), ("jpg", "JPEG", 3), ("webp", "WEBP", 3)],
)
def test_round_trip_keeps_pixels(tmp_path, suffix, fmt, tolerance):
    source = gradient()
    path = write(tmp_path, f"image.{suffix}", encoded(source, fmt, quality=95))

    image, info = decode_image_with_info(path)

    assert image.dtype == np.uint8 and image.shape == source.shape
    assert image.flags.c_contiguous
    assert mean_abs_diff(image, source) <= tolerance
    if tolerance == 0:
        assert np.array_equal(image, source)
    assert info == ImageInfo(fmt, 64, 48, "RGB", 1, 1, ())


def test_suffix_does_not_matter_only_content(tmp_path):
    source = gradient()
    path = write(tmp_path, "really_a_png.jpg", encoded(source, "PNG"))
    image, info = decode_image_with_info(path)
    assert info.format == "PNG" and np.array_equal(image, source)


def test_decode_bytes_is_the_same_decoder(tmp_path):
    data = encoded(gradient(), "PNG")
    from_file = decode_image(write(tmp_path, "a.png", data))
    from_bytes, _ = decode_bytes(data, name="in-memory.png")
    assert np.array_equal(from_file, from_bytes)


def test_non_ascii_path_with_spaces(tmp_path):
    source = gradient()
    path = write(tmp_path, "fotos/caf\u00e9 \u732b.png", encoded(source, "PNG"))
    assert np.array_equal(decode_image(path), source)
    assert np.array_equal(decode_image(str(path)), source)


def test_image_suffixes():
    assert IMAGE_SUFFIXES == set(".jpg .jpeg .jpe .jfif .png .bmp .tif .tiff .webp .gif".split())


# --- EXIF orientation ---------------------------------------------------------


def exif_with_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def test_exif_orientation_6_jpeg_is_rotated_clockwise(tmp_path):
    source = gradient(40, 60)  # stored landscape, meant to be shown portrait
    path = write(tmp_path, "phone.jpg", encoded(source, "JPEG", quality=95, exif=exif_with_orientation(6)))

    image, info = decode_image_with_info(path)

    assert image.shape == (60, 40, 3)
    assert mean_abs_diff(image, np.rot90(source, k=-1)) < 3
    assert (info.width, info.height, info.orientation) == (40, 60, 6)
    assert "EXIF orientation 6 applied" in info.notes


def test_header_size_is_the_displayed_size_read_without_decoding(tmp_path):
    turned = write(tmp_path, "phone.jpg", encoded(gradient(40, 60), "JPEG", quality=95, exif=exif_with_orientation(6)))
    plain = write(tmp_path, "plain.png", encoded(gradient(40, 60), "PNG"))
    assert header_size(turned) == (60, 40) == decode_image(turned).shape[:2]
    assert header_size(plain) == (40, 60)
    assert header_size(write(tmp_path, "text.jpg", b"not an image")) is None
    assert header_size(tmp_path / "missing.jpg") is None


def with_orientation(container: str, image: np.ndarray, orientation: int) -> bytes:
    """``image`` stored as ``container`` with EXIF orientation ``orientation``, where that container keeps it."""
    exif = exif_with_orientation(orientation)
    if container == "JPEG":
        return encoded(image, "JPEG", quality=95, exif=exif)
    if container == "progressive JPEG":
        return encoded(image, "JPEG", quality=95, progressive=True, exif=exif)
    if container == "CMYK JPEG":  # pixels from Pillow, not libjpeg-turbo's RGB output
        return encoded(Image.fromarray(image).convert("CMYK"), "JPEG", quality=95, exif=exif)
    if container == "MPO":
        preview = Image.fromarray(image[::-1])
        return encoded(Image.fromarray(image), "MPO", save_all=True, append_images=[preview], exif=exif)
    if container == "PNG":  # an eXIf chunk
        return encoded(image, "PNG", exif=exif)
    if container == "WEBP":  # an EXIF chunk in the RIFF container
        return encoded(image, "WEBP", lossless=True, exif=exif)
    if container == "TIFF":  # tag 274 in the image's own IFD
        return encoded(image, "TIFF", tiffinfo={0x0112: orientation})
    raise ValueError(container)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("container", ["JPEG", "progressive JPEG", "CMYK JPEG", "MPO", "PNG", "WEBP", "TIFF"])
def test_every_exif_orientation_in_every_format_matches_pillow_exif_transpose(container, orientation):
    # gradient() changes under every flip and rotation, so each of the 8 values
    # gives a different expected image.
    data = with_orientation(container, gradient(40, 60), orientation)
    with Image.open(io.BytesIO(data)) as img:
        assert img.getexif().get(0x0112) == orientation
        expected = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))

    image, info = decode_bytes(data)

    assert info.orientation == orientation
    assert image.shape == expected.shape
    assert np.array_equal(image, expected)
    assert (f"EXIF orientation {orientation} applied" in info.notes) == (orientation != 1)


def test_orientation_out_of_range_is_ignored():
    image, info = decode_bytes(encoded(gradient(), "JPEG", exif=exif_with_orientation(9)))
    assert image.shape == (48, 64, 3) and info.orientation == 1


# --- channels, alpha and bit depth -----------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP", "TIFF"])
def test_grayscale_becomes_three_equal_channels(fmt):
    gray = gradient()[:, :, 0]
    image, info = decode_bytes(encoded(Image.fromarray(gray, "L"), fmt))
    assert image.shape == (48, 64, 3)
    assert np.array_equal(image[:, :, 0], image[:, :, 1]) and np.array_equal(image[:, :, 1], image[:, :, 2])
    assert mean_abs_diff(image[:, :, 0], gray) <= 2
    assert info.mode == "L"


def test_rgba_png_is_composited_on_white():
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[0, 0] = (*RED, 255)  # opaque: keeps its colour
    rgba[0, 1] = (*BLUE, 0)  # fully transparent: white, whatever its colour
    rgba[0, 2] = (0, 0, 0, 128)  # half transparent black: mid grey
    rgba[1] = (*GREEN, 255)

    image, info = decode_bytes(encoded(Image.fromarray(rgba, "RGBA"), "PNG"))

    assert tuple(image[0, 0]) == RED
    assert tuple(image[0, 1]) == WHITE
    assert tuple(image[0, 2]) == (127, 127, 127)
    assert tuple(image[1, 0]) == GREEN
    assert "alpha composited on white" in info.notes


def test_opaque_rgba_is_not_reported_as_composited():
    rgba = np.dstack([gradient(), np.full((48, 64), 255, np.uint8)])
    image, info = decode_bytes(encoded(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert np.array_equal(image, gradient()) and info.notes == ()


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_gray_alpha_and_webp_alpha_are_composited_on_white(fmt):
    la = np.array([[[80, 255], [80, 0]]], np.uint8)  # opaque grey, transparent grey
    image = Image.fromarray(la, "LA") if fmt == "PNG" else Image.fromarray(la, "LA").convert("RGBA")
    decoded, _ = decode_bytes(encoded(image, fmt, lossless=True))
    assert tuple(decoded[0, 0]) == (80, 80, 80)
    assert tuple(decoded[0, 1]) == WHITE


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_with_transparent_index_is_composited_on_white(fmt):
    palette_image = Image.new("P", (2, 1))
    palette_image.putpalette([*BLUE, *RED] + [0] * 762)
    palette_image.putpixel((0, 0), 0)  # index 0: transparent blue
    palette_image.putpixel((1, 0), 1)  # index 1: opaque red

    image, info = decode_bytes(encoded(palette_image, fmt, transparency=0))

    assert info.mode == "P"
    assert tuple(image[0, 0]) == WHITE
    assert tuple(image[0, 1]) == RED


def test_rgb_png_with_colour_key_transparency():
    rgb = np.array([[BLUE, RED]], np.uint8)
    image, _ = decode_bytes(encoded(rgb, "PNG", transparency=BLUE))
    assert tuple(image[0, 0]) == WHITE and tuple(image[0, 1]) == RED


def test_sixteen_bit_png_is_scaled_not_clipped():
    sixteen_bit_png = encoded(Image.fromarray(np.array([[0, 65535, 32896, 257, 384]], np.uint16)), "PNG")

    image, info = decode_bytes(sixteen_bit_png)

    assert image[0, :, 0].tolist() == [0, 255, 128, 1, 1]  # 384/257 = 1.49 rounds to 1
    assert info.mode.startswith("I")
    assert "16-bit scaled to 8-bit" in info.notes


def test_sixteen_bit_rgb_png_keeps_channel_order():
    rgb16 = np.array([[[65535, 0, 32896], [0, 257, 65535]]], np.uint16)
    ok, buf = cv2.imencode(".png", rgb16[:, :, ::-1])  # OpenCV writes BGR
    assert ok

    image, _ = decode_bytes(buf.tobytes())

    assert image.tolist() == [[[255, 0, 128], [0, 1, 255]]]


# (x start, y start, x step, y step) of the seven passes of an Adam7-interlaced PNG
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> samples per pixel


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def sixteen_bit_png(samples: np.ndarray, color_type: int, *, interlaced: bool = False, trns: bytes = b"") -> bytes:
    """A 16-bit PNG of ``samples`` (H, W[, C]), written here: no library writes grey with
    alpha at 16 bits, nor interlaced PNGs."""
    h, w = samples.shape[:2]
    big_endian = samples.reshape(h, w, -1).astype(">u2")
    passes = ADAM7 if interlaced else [(0, 0, 1, 1)]
    rows = b"".join(b"\x00" + row.tobytes() for x0, y0, dx, dy in passes for row in big_endian[y0::dy, x0::dx])
    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, int(interlaced))
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + (png_chunk(b"tRNS", trns) if trns else b"")
            + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b""))


def scaled_and_composited(samples: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
    """The decoding policy, written out: 16 bits to 8 with rounding, then alpha on white."""
    eight = (samples.astype(np.uint32) * 255 + 32767) // 65535
    rgb = np.repeat(eight[..., None], 3, axis=2) if eight.ndim == 2 else eight
    if alpha is None:
        return rgb.astype(np.uint8)
    w = ((alpha.astype(np.uint32) * 255 + 32767) // 65535)[..., None]
    return ((rgb * w + 255 * (255 - w) + 127) // 255).astype(np.uint8)


def sixteen_bit_samples(h: int, w: int, channels: int) -> np.ndarray:
    """Every byte pattern that matters: extremes, and high and low bytes that differ."""
    rng = np.random.default_rng(channels)
    samples = rng.integers(0, 65536, (h, w, channels), dtype=np.uint16)
    samples[0, :4] = np.array([0, 65535, 0x00FF, 0xFF00])[:, None]
    return samples[..., 0] if channels == 1 else samples


@pytest.mark.parametrize("interlaced", [False, True], ids=["sequential", "interlaced"])
@pytest.mark.parametrize("color_type", [0, 2, 4, 6], ids=["grey", "rgb", "grey+alpha", "rgba"])
def test_every_kind_of_sixteen_bit_png_is_scaled_with_rounding(color_type, interlaced):
    samples = sixteen_bit_samples(11, 13, PNG_CHANNELS[color_type])
    has_alpha = color_type in (4, 6)
    colour, alpha = (samples[..., :-1], samples[..., -1]) if has_alpha else (samples, None)
    if colour.ndim == 3 and colour.shape[2] == 1:
        colour = colour[..., 0]

    image, info = decode_bytes(sixteen_bit_png(samples, color_type, interlaced=interlaced))

    assert np.array_equal(image, scaled_and_composited(colour, alpha))
    assert "16-bit scaled to 8-bit" in info.notes


def test_a_sixteen_bit_colour_key_is_matched_on_all_sixteen_bits():
    rgb = sixteen_bit_samples(5, 6, 3)
    rgb[1, 1] = (0x1234, 0x5678, 0x9ABC)  # the key
    rgb[1, 2] = (0x1235, 0x5678, 0x9ABC)  # the same high bytes: not the key
    alpha = np.where((rgb == (0x1234, 0x5678, 0x9ABC)).all(axis=2), 0, 65535)
    image, _ = decode_bytes(sixteen_bit_png(rgb, 2, trns=struct.pack(">HHH", 0x1234, 0x5678, 0x9ABC)))
    assert np.array_equal(image, scaled_and_composited(rgb, alpha))
    assert tuple(image[1, 1]) == WHITE and tuple(image[1, 2]) != WHITE


def test_a_sixteen_bit_grey_colour_key_is_transparent():
    grey = sixteen_bit_samples(5, 6, 1)
    grey[2, 3] = 0x0102
    image, _ = decode_bytes(sixteen_bit_png(grey, 0, trns=struct.pack(">H", 0x0102)))
    assert np.array_equal(image, scaled_and_composited(grey, np.where(grey == 0x0102, 0, 65535)))


def test_sixteen_bit_tiff_is_scaled():
    image, _ = decode_bytes(encoded(Image.fromarray(np.array([[65535, 32896]], np.uint16)), "TIFF"))
    assert image[0, :, 0].tolist() == [255, 128]


def test_float_tiff_in_unit_range_is_scaled():
    image, info = decode_bytes(encoded(Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32), "F"), "TIFF"))
    assert image[0, :, 0].tolist() == [0, 128, 255]
    assert "floating-point scaled to 8-bit" in info.notes


def test_32_bit_bmp_padding_byte_is_not_taken_as_alpha():
    # BI_RGB 32 bpp: the 4th byte is padding, here 0; as alpha it would give white.
    h, w = 4, 5
    source = gradient(h, w)
    rows = np.dstack([source[:, :, ::-1], np.zeros((h, w), np.uint8)])[::-1].tobytes()  # bottom-up BGRX
    header = struct.pack("<2sIHHI", b"BM", 54 + len(rows), 0, 0, 54)
    header += struct.pack("<IiiHHIIiiII", 40, w, h, 1, 32, 0, len(rows), 2835, 2835, 0, 0)

    image, _ = decode_bytes(header + rows)

    assert np.array_equal(image, source)


def test_cmyk_jpeg_has_correct_colours():
    red = np.zeros((16, 16, 3), np.uint8)
    red[:] = RED
    cmyk_jpeg = encoded(Image.fromarray(red).convert("CMYK"), "JPEG", quality=95)
    # Pillow writes what Photoshop does: an Adobe APP14 marker and inverted
    # CMYK samples, the variant naive decoders show as a negative.
    assert cmyk_jpeg[2:4] == b"\xff\xee" and cmyk_jpeg[6:11] == b"Adobe"

    image, info = decode_bytes(cmyk_jpeg)

    assert info.mode == "CMYK" and "CMYK converted to RGB" in info.notes
    assert mean_abs_diff(image, red) < 4


# --- multi-frame files --------------------------------------------------------------


def three_solid_frames() -> list[Image.Image]:
    return [Image.new("RGB", (30, 20), colour) for colour in (RED, GREEN, BLUE)]


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])  # animated GIF, APNG, animated WebP
def test_animation_gives_first_frame_with_a_note(fmt):
    first, *rest = three_solid_frames()
    animated = encoded(first, fmt, save_all=True, append_images=rest, lossless=True, duration=100)

    image, info = decode_bytes(animated)

    assert image.shape == (20, 30, 3)
    assert mean_abs_diff(image, np.asarray(first)) < 2
    assert info.frames == 3
    assert "first frame of 3" in info.notes


def test_multi_page_tiff_gives_first_page():
    first, *rest = three_solid_frames()
    image, info = decode_bytes(encoded(first, "TIFF", save_all=True, append_images=rest))
    assert np.array_equal(image, np.asarray(first))
    assert info.frames == 3 and "first frame of 3" in info.notes


def test_mpo_gives_the_main_image_without_a_frame_note():
    # Cameras store previews as extra MPO frames; they are not an animation.
    main, preview = Image.new("RGB", (8, 6), RED), Image.new("RGB", (8, 6), BLUE)
    image, info = decode_bytes(encoded(main, "MPO", save_all=True, append_images=[preview]))
    assert info.format == "MPO" and info.frames == 2 and info.notes == ()
    assert mean_abs_diff(image, np.asarray(main)) < 3


# --- size limit ------------------------------------------------------------------------


@pytest.fixture
def pixel_decoders(monkeypatch) -> list[str]:
    """The names of the pixel decoders called (each then raises), filled as they are called:
    OpenCV's, libjpeg-turbo's through simplejpeg, and Pillow's load."""
    called = []

    def refusing(name):
        def refuse(*args, **kwargs):
            called.append(name)
            raise AssertionError(f"{name} was called")
        return refuse

    monkeypatch.setattr(decoding.cv2, "imdecode", refusing("cv2.imdecode"))
    monkeypatch.setattr(simplejpeg, "decode_jpeg", refusing("simplejpeg.decode_jpeg"))
    monkeypatch.setattr(ImageFile.ImageFile, "load", refusing("ImageFile.load"))
    return called


def test_decompression_bomb_is_rejected_from_the_header_alone(tmp_path, pixel_decoders):
    bomb = write(tmp_path, "bomb.png", png_with_size(30000, 30000))
    assert bomb.stat().st_size < 100

    tracemalloc.start()
    error = decode_error(bomb)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert error.reason == "too_large"
    assert pixel_decoders == []
    assert peak < 5_000_000  # a decoded 30000x30000 RGB image would be 2.7 GB
    assert str(error) == (
        f"{bomb}: image is 30000x30000 (900.0 Mpx), over the 89.5 Mpx limit; "
        "raise it with --max-pixels (max_pixels= from Python) or AUGKIT_MAX_IMAGE_PIXELS"
    )


def test_default_limit_is_pillows():
    assert DEFAULT_MAX_PIXELS == 89_478_485


def test_max_pixels_argument():
    data = encoded(np.zeros((100, 100, 3), np.uint8), "PNG")
    assert decode_error(data, max_pixels=9_999).reason == "too_large"
    assert decode_bytes(data, max_pixels=10_000)[0].shape == (100, 100, 3)
    # 0 means no limit at all.
    assert decode_bytes(png_with_size(1, 1), max_pixels=0)[0].shape == (1, 1, 3)


def test_max_pixels_environment_variable(monkeypatch):
    data = encoded(np.zeros((100, 100, 3), np.uint8), "PNG")
    monkeypatch.setenv("AUGKIT_MAX_IMAGE_PIXELS", "5000")
    assert decode_error(data).reason == "too_large"
    # An explicit argument wins over the environment.
    assert decode_bytes(data, max_pixels=10_000)[0].shape == (100, 100, 3)
    monkeypatch.setenv("AUGKIT_MAX_IMAGE_PIXELS", "0")  # no limit, as --max-pixels 0 in the library
    assert decode_bytes(png_with_size(1, 1))[0].shape == (1, 1, 3)


@pytest.mark.parametrize("value", ["abc", "-5", "1.5", "5e6"])
def test_a_max_pixels_variable_that_is_no_whole_number_is_a_usage_error_naming_it(monkeypatch, value):
    # "abc" was a ValueError per image (a task_error row each), and -5 meant no limit.
    monkeypatch.setenv("AUGKIT_MAX_IMAGE_PIXELS", value)
    message = (f"AUGKIT_MAX_IMAGE_PIXELS={value!r} is not a pixel limit: give a whole number of pixels, "
               "such as 89478485 (the default), or 0 for no limit")
    for call in (decoding.resolve_max_pixels, lambda: decode_bytes(encoded(gradient(), "PNG"))):
        with pytest.raises(UsageError) as error:
            call()
        assert str(error.value) == message


def test_a_bad_max_pixels_variable_is_reported_before_the_file_is_looked_at(monkeypatch, tmp_path):
    monkeypatch.setenv("AUGKIT_MAX_IMAGE_PIXELS", "abc")
    with pytest.raises(UsageError, match="AUGKIT_MAX_IMAGE_PIXELS='abc'"):
        decode_image(tmp_path / "missing.jpg")  # not a "missing" row: the setting is wrong for every file


@pytest.mark.parametrize("value", [-1, 1.5])
def test_a_negative_or_fractional_max_pixels_argument_is_a_usage_error(value):
    with pytest.raises(UsageError, match=rf"^max_pixels={value} is not a pixel limit"):
        decode_bytes(encoded(gradient(), "PNG"), max_pixels=value)


def test_preview_reports_a_bad_max_pixels_variable_once_with_exit_2(tmp_path):
    # preview decodes in its own process; the commands with workers must call
    # decoding.resolve_max_pixels before starting them to do the same.
    (tmp_path / "r.yaml").write_text("transforms:\n  - HorizontalFlip: {p: 0.5}\n")
    image = write(tmp_path, "a.png", encoded(gradient(), "PNG"))
    env = {**os.environ, "AUGKIT_MAX_IMAGE_PIXELS": "abc"}
    result = subprocess.run([sys.executable, "-m", "augkit", "preview", str(tmp_path / "r.yaml"), str(image),
                             "-o", str(tmp_path / "p.png")], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("Error: AUGKIT_MAX_IMAGE_PIXELS='abc' is not a pixel limit")
    assert result.stderr.count("\n") == 1


# --- broken files ------------------------------------------------------------------------


def test_truncated_jpeg_is_an_error_never_a_grey_image(tmp_path):
    data = encoded(gradient(480, 640), "JPEG", quality=90)
    truncated_jpeg = write(tmp_path, "half.jpg", data[: len(data) // 2])
    assert decode_error(truncated_jpeg).reason == "truncated"


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"])
def test_cut_short_files_are_truncated(fmt, fraction):
    image = Image.fromarray(gradient(120, 160))
    data = encoded(image.quantize() if fmt == "GIF" else image, fmt)
    assert decode_error(data[: int(len(data) * fraction)]).reason == "truncated"


def test_progressive_jpeg_missing_only_its_end_marker_is_truncated():
    data = encoded(gradient(), "JPEG", progressive=True)
    assert data.endswith(b"\xff\xd9")
    assert decode_error(data[:-2]).reason == "truncated"


def test_data_after_the_end_of_a_jpeg_is_ignored():
    # Motion photos append a video after the JPEG; it may contain FF DA (SOS).
    video = b"\x00\x00\x00\x18ftypmp42" + b"\xff\xda\x00\x08" + bytes(range(255))  # SOS, then no EOI
    motion_photo = encoded(gradient(), "JPEG") + video
    image, _ = decode_bytes(motion_photo)
    assert mean_abs_diff(image, gradient()) < 3


def test_jpeg_with_exif_thumbnail_is_complete():
    thumbnail = encoded(gradient(8, 8), "JPEG")
    exif = Image.Exif()
    exif[0x0112] = 1
    data = encoded(gradient(), "JPEG", exif=exif.tobytes() + thumbnail)  # thumbnail EOI inside APP1
    assert decode_bytes(data)[0].shape == (48, 64, 3)


def test_damaged_png_data_is_corrupt():
    data = bytearray(encoded(gradient(), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 20 : idat + 60] = bytes(40)
    assert decode_error(bytes(data)).reason == "corrupt"


def bmp_with_size(width: int, height: int, image: np.ndarray | None = None) -> bytes:
    """A 24-bit BMP of ``image`` (gradient() by default) whose header says width x height."""
    data = bytearray(encoded(gradient() if image is None else image, "BMP"))
    struct.pack_into("<ii", data, 18, width, height)
    return bytes(data)


def test_a_bmp_with_a_negative_width_is_corrupt_not_billions_of_pixels():
    # Pillow reads the width unsigned: -64 became 4294967232, reported as too_large.
    error = decode_error(bmp_with_size(-64, 48))
    assert (error.reason, error.detail) == ("corrupt", "damaged BMP header (it says the image is -64x48 pixels)")


@pytest.mark.parametrize(("width", "height"), [(0, 48), (64, 0), (64, -(2**31))])
def test_a_bmp_claiming_no_pixels_is_corrupt(width, height):
    error = decode_error(bmp_with_size(width, height))
    assert (error.reason, error.detail) == (
        "corrupt", f"damaged BMP header (it says the image is {width}x{height} pixels)")


def test_a_top_down_bmp_with_a_negative_height_is_valid_and_upright():
    stored_bottom_up = gradient()[::-1]  # what Pillow writes, read in the order of a top-down file
    assert np.array_equal(decode_bytes(bmp_with_size(64, -48, stored_bottom_up))[0], gradient())


@pytest.mark.parametrize("width", [0, 2**31, 2**32 - 1])
def test_a_png_side_outside_what_png_allows_is_corrupt(width):
    error = decode_error(png_with_size(width, 1))
    assert error.reason == "corrupt"
    assert f"it says the image is {width}x1 pixels; PNG allows 1 to 2,147,483,647 a side" in error.detail


def test_lab_tiff_is_unsupported_rather_than_wrongly_coloured():
    assert decode_error(encoded(Image.new("LAB", (4, 3)), "TIFF")).reason == "unsupported"


def test_zero_byte_file_is_empty(tmp_path):
    assert decode_error(write(tmp_path, "empty.jpg", b"")).reason == "empty"


def test_html_saved_as_jpg_is_not_an_image(tmp_path):
    html_as_jpg = write(tmp_path, "x.jpg", b"<!DOCTYPE html><html><body>403 Forbidden</body></html>\n")
    error = decode_error(html_as_jpg)
    assert error.reason == "not_an_image"
    assert "not a recognised image format" in str(error)


def test_random_bytes_are_not_an_image(tmp_path):
    error = decode_error(write(tmp_path, "noise.png", bytes(range(256)) * 4))
    assert error.reason == "not_an_image" and "is it really a .png?" in str(error)


def test_missing_file_and_directory_are_missing(tmp_path):
    assert decode_error(tmp_path / "nope.jpg").reason == "missing"
    assert decode_error(tmp_path).reason == "missing"


@contextlib.contextmanager
def writer_after_a_while(fifo):
    """Should the reader under test block opening ``fifo`` (waiting for a writer), open
    it for writing after a while, so that the reader gets end-of-file and the test fails
    instead of hanging. A reader that never blocks never waits for this."""
    done = threading.Event()

    def unblock():
        if not done.wait(30):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    thread = threading.Thread(target=unblock, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def test_a_fifo_is_not_an_image_and_is_never_opened_for_a_blocking_read(tmp_path):
    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)
    with writer_after_a_while(fifo):
        error = decode_error(fifo)
    assert (error.reason, str(error)) == (
        "not_an_image", f"{fifo}: is a named pipe (FIFO), not a file; only regular files are read as images")


def test_open_sample_opens_a_file_as_decoding_reads_it_and_refuses_a_fifo_without_blocking(tmp_path):
    from augkit.input.decoding import DecodeError, open_sample

    image = write(tmp_path, "real.png", encoded(gradient(), "PNG"))
    with open_sample(image) as f:
        assert f.read() == image.read_bytes()
    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)
    with writer_after_a_while(fifo), pytest.raises(DecodeError, match="is a named pipe"):
        open_sample(fifo)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_symlink_to_a_device_is_not_read(tmp_path):
    os.symlink("/dev/zero", tmp_path / "endless.jpg")  # reading it would fill the memory
    assert "is a character device" in str(decode_error(tmp_path / "endless.jpg"))


def test_a_symlink_to_an_image_is_read(tmp_path):
    image = write(tmp_path, "real.png", encoded(gradient(), "PNG"))
    os.symlink(image, tmp_path / "linked.png")
    assert np.array_equal(decode_image(tmp_path / "linked.png"), gradient())


def broken_files(tmp_path) -> dict[str, object]:
    jpeg = encoded(gradient(), "JPEG")
    return {
        "missing": tmp_path / "gone.jpg",
        "empty": write(tmp_path, "empty.png", b""),
        "not_an_image": write(tmp_path, "page.jpg", b"<html>\n<body>\nnot found\n</body>\n</html>\n"),
        "too_large": write(tmp_path, "bomb.png", png_with_size(20000, 20000)),
        "truncated": write(tmp_path, "cut.jpg", jpeg[: len(jpeg) // 2]),
        "corrupt": write(tmp_path, "bad header.png", png_with_size(0, 5)),
    }


def test_every_error_is_one_line_naming_the_file_and_has_a_known_reason(tmp_path):
    for reason, path in broken_files(tmp_path).items():
        error = decode_error(path)
        assert error.reason == reason, (reason, str(error))
        assert error.path == str(path)
        message = str(error)
        assert "\n" not in message and "\r" not in message
        assert message.startswith(f"{path}: ")


def test_decode_error_survives_pickling_for_worker_processes(tmp_path):
    error = decode_error(write(tmp_path, "empty.jpg", b""))
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.path, str(copy)) == (error.reason, error.path, str(error))


# --- the JPEG fast path ------------------------------------------------------------------
# decode_bytes reads a plain JPEG's header in its own segment walk instead of
# opening the file with Pillow. decoding._decode_general is the Pillow-based
# path for every format; on every JPEG the two must give the same pixels,
# ImageInfo and error reason.


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload


def with_segments(jpeg: bytes, *segments: bytes) -> bytes:
    """The JPEG with ``segments`` inserted right after its SOI marker."""
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


def exif_segment(tiff: bytes) -> bytes:
    return jpeg_segment(0xE1, b"Exif\x00\x00" + tiff)


def tiff_block(ifd0, byte_order: str = "<", thumbnail: bytes | None = None) -> bytes:
    """EXIF's TIFF structure, built by hand so either byte order can be tested.

    ``ifd0`` holds (tag, field type, count, value bytes); a thumbnail goes in
    IFD1 as cameras store it (JPEGInterchangeFormat + its length).
    """
    e = byte_order
    ifd1 = []
    if thumbnail is not None:
        ifd1 = [(0x0201, 4, 1, None), (0x0202, 4, 1, struct.pack(e + "L", len(thumbnail)))]
    ifd1_at = 8 + 6 + 12 * len(ifd0)
    values_at = ifd1_at + (6 + 12 * len(ifd1) if ifd1 else 0)
    values = thumbnail or b""  # the thumbnail first, at values_at

    def ifd(entries, next_at: int) -> bytes:
        nonlocal values
        out = struct.pack(e + "H", len(entries))
        for tag, kind, count, value in entries:
            value = struct.pack(e + "L", values_at) if value is None else value
            if len(value) > 4:
                out += struct.pack(e + "HHLL", tag, kind, count, values_at + len(values))
                values += value
            else:
                out += struct.pack(e + "HHL", tag, kind, count) + value.ljust(4, b"\x00")
        return out + struct.pack(e + "L", next_at)

    head = (b"II*\x00" if e == "<" else b"MM\x00*") + struct.pack(e + "L", 8)
    directories = ifd(ifd0, ifd1_at if ifd1 else 0) + (ifd(ifd1, 0) if ifd1 else b"")
    return head + directories + values


def orientation_entry(value: int, byte_order: str = "<"):
    return (0x0112, 3, 1, struct.pack(byte_order + "H", value))


def outcome(decode) -> tuple:
    try:
        image, info = decode()
    except DecodeError as e:
        return "error", e.reason, str(e)
    return "ok", image, info


def assert_fast_path_agrees(data: bytes, *, fast: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple:
    """decode_bytes gives what the Pillow-header path gives; ``fast``: it did not use that path."""
    assert (decoding._jpeg_header(data) is not None) == fast
    new = outcome(lambda: decode_bytes(data, max_pixels=max_pixels))
    old = outcome(lambda: decoding._decode_general(data, "<bytes>", max_pixels))
    assert new[0] == old[0], (new, old)
    if new[0] == "error":
        assert new == old
    else:
        assert new[2] == old[2]
        assert new[1].shape == old[1].shape and np.array_equal(new[1], old[1])
        assert new[1].flags.c_contiguous
    return new


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_fast_path_matches_pillow_path(progressive, mode, orientation):
    source = Image.fromarray(gradient(40, 60)).convert(mode)
    exif = exif_with_orientation(orientation)
    assert exif.startswith(b"Exif\x00\x00MM")  # Pillow writes big-endian EXIF
    data = encoded(source, "JPEG", quality=90, progressive=progressive, exif=exif)

    _, image, info = assert_fast_path_agrees(data)

    portrait = orientation >= 5
    assert image.shape == ((60, 40, 3) if portrait else (40, 60, 3))
    assert (info.format, info.mode, info.frames, info.orientation) == ("JPEG", mode, 1, orientation)


SAMPLINGS = {"444": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444, "422": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
             "420": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, "440": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_440,
             "411": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_411}


@pytest.mark.parametrize("restart", [0, 3], ids=["no-restarts", "restarts"])
@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
@pytest.mark.parametrize("sampling", list(SAMPLINGS))
@pytest.mark.parametrize(("height", "width", "quality"), [(37, 53, 95), (48, 64, 50), (1, 9, 75)])
def test_turbojpeg_decodes_the_pixels_opencv_decodes(height, width, quality, sampling, progressive, restart):
    # The fast path decodes with simplejpeg (libjpeg-turbo's TurboJPEG API); every output
    # must be what OpenCV's decoder gives, or results would depend on which one ran.
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, SAMPLINGS[sampling],
              cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive), cv2.IMWRITE_JPEG_RST_INTERVAL, restart]
    data = cv2.imencode(".jpg", make_structured_rgb(height, width, seed=quality), params)[1].tobytes()
    header = decoding._jpeg_header(data)

    turbo = decoding._decode_turbojpeg(data, header)

    assert turbo is not None
    assert np.array_equal(turbo, cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
    assert_fast_path_agrees(data)


def test_turbojpeg_decodes_grey_jpegs_as_three_equal_channels():
    data = encoded(Image.fromarray(gradient(40, 60)).convert("L"), "JPEG", quality=85)
    turbo = decoding._decode_turbojpeg(data, decoding._jpeg_header(data))
    assert turbo.shape == (40, 60, 3) and np.array_equal(turbo[..., 0], turbo[..., 2])
    assert_fast_path_agrees(data)


def test_a_stray_restart_marker_inside_a_scan_is_corrupt_on_both_paths():
    data = bytearray(encoded(gradient(64, 96), "JPEG", quality=90))
    scan = decoding._jpeg_header(bytes(data)).scan
    data[scan + 40: scan + 44] = b"\xff\x00\xff\xd3"
    assert assert_fast_path_agrees(bytes(data))[:2] == ("error", "corrupt")


def test_fast_path_without_exif():
    info = assert_fast_path_agrees(encoded(gradient(), "JPEG"))[2]
    assert info == ImageInfo("JPEG", 64, 48, "RGB", 1, 1, ())


@pytest.mark.parametrize("orientation", range(1, 9))
def test_fast_path_reads_little_endian_exif(orientation):
    # Typical camera IFD0: out-of-line strings and rationals around the
    # orientation, and a DPI that Pillow reads from EXIF (its JFIF has none).
    tiff = tiff_block(
        [
            (0x010F, 2, 6, b"Canon\x00"),
            orientation_entry(orientation),
            (0x011A, 5, 1, struct.pack("<LL", 180, 1)),
            (0x011B, 5, 1, struct.pack("<LL", 180, 1)),
            (0x0128, 3, 1, struct.pack("<H", 2)),
        ]
    )
    data = with_segments(encoded(gradient(40, 60), "JPEG"), exif_segment(tiff))
    with Image.open(io.BytesIO(data)) as img:
        assert img.getexif()[0x0112] == orientation and img.info["dpi"] == (180, 180)

    _, _, info = assert_fast_path_agrees(data)

    assert info.orientation == orientation


@pytest.mark.parametrize("byte_order", ["<", ">"])
def test_fast_path_with_exif_thumbnail(byte_order):
    thumbnail = encoded(gradient(8, 8), "JPEG")  # a whole JPEG, SOI to EOI, inside APP1
    tiff = tiff_block([orientation_entry(6, byte_order)], byte_order, thumbnail=thumbnail)
    data = with_segments(encoded(gradient(), "JPEG"), exif_segment(tiff))
    with Image.open(io.BytesIO(data)) as img:
        assert img.getexif().get_ifd(ExifTags.IFD.IFD1)[0x0202] == len(thumbnail)

    _, image, info = assert_fast_path_agrees(data)

    assert image.shape == (64, 48, 3) and info.orientation == 6


def test_cmyk_jpeg_still_takes_the_pillow_path():
    red = np.zeros((16, 16, 3), np.uint8)
    red[:] = RED
    cmyk_jpeg = encoded(Image.fromarray(red).convert("CMYK"), "JPEG", quality=95)

    _, image, info = assert_fast_path_agrees(cmyk_jpeg, fast=False)

    assert info.mode == "CMYK" and "CMYK converted to RGB" in info.notes
    assert mean_abs_diff(image, red) < 4


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.95])
@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_truncated_jpeg_is_truncated_on_both_paths(progressive, fraction):
    data = encoded(gradient(120, 160), "JPEG", quality=90, progressive=progressive)
    cut = data[: int(len(data) * fraction)]
    assert assert_fast_path_agrees(cut)[:2] == ("error", "truncated")


def test_jpeg_cut_inside_its_header_is_truncated_on_both_paths():
    data = encoded(gradient(), "JPEG")
    cut = data[: data.index(b"\xff\xda") + 3]  # inside the SOS header
    assert assert_fast_path_agrees(cut, fast=False)[:2] == ("error", "truncated")


def test_jpeg_bomb_is_rejected_from_its_sof_without_decoding(monkeypatch, pixel_decoders):
    data = bytearray(encoded(gradient(8, 8), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 30000, 30000)  # height, width
    bomb = bytes(data)
    assert_fast_path_agrees(bomb)

    def refuse(*args, **kwargs):
        raise AssertionError("the bomb reached Pillow")

    monkeypatch.setattr(decoding.Image, "open", refuse)
    tracemalloc.start()
    error = decode_error(bomb)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert error.reason == "too_large"
    assert pixel_decoders == []
    assert str(error) == (
        "<bytes>: image is 30000x30000 (900.0 Mpx), over the 89.5 Mpx limit; "
        "raise it with --max-pixels (max_pixels= from Python) or AUGKIT_MAX_IMAGE_PIXELS"
    )
    assert peak < 1_000_000


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_data_after_the_end_of_a_jpeg_is_ignored_on_both_paths(progressive):
    video = b"\x00\x00\x00\x18ftypmp42" + b"\xff\xda\x00\x08" + bytes(range(255))  # SOS, then no EOI
    motion_photo = encoded(gradient(), "JPEG", progressive=progressive) + video
    _, image, _ = assert_fast_path_agrees(motion_photo)
    assert mean_abs_diff(image, gradient()) < 3


def test_plain_jpegs_are_read_without_pillow(monkeypatch):
    files = [
        encoded(gradient(), "JPEG", exif=exif_with_orientation(6)),
        encoded(Image.fromarray(gradient()).convert("L"), "JPEG", progressive=True),
    ]

    def refuse(*args, **kwargs):
        raise AssertionError("Pillow opened a plain JPEG")

    monkeypatch.setattr(decoding.Image, "open", refuse)
    assert decode_bytes(files[0])[1].orientation == 6
    assert decode_bytes(files[1])[1].mode == "L"


def patched(data: bytes, find: bytes, offset: int, new: bytes) -> bytes:
    at = data.index(find) + offset
    return data[:at] + new + data[at + len(new) :]


def unusual_jpegs() -> dict[str, tuple[bytes, bool]]:
    """Name -> (JPEG, whether the fast path may take it); each must agree with Pillow's path."""
    plain = encoded(gradient(), "JPEG")
    le_exif = lambda *entries: with_segments(plain, exif_segment(tiff_block(list(entries))))
    xmp = b'http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta><rdf:Description tiff:Orientation="3"/>'
    irb = (
        b"Photoshop 3.0\x00"
        + b"8BIM"
        + struct.pack(">H", 0x03ED)
        + b"\x00\x00"
        + struct.pack(">L", 16)
        + bytes(16)
    )
    main, preview = Image.new("RGB", (8, 6), RED), Image.new("RGB", (8, 6), BLUE)
    return {
        # taken by the fast path
        "xmp orientation only": (with_segments(plain, jpeg_segment(0xE1, xmp)), True),
        "xmp and exif": (
            with_segments(plain, exif_segment(tiff_block([orientation_entry(8)])), jpeg_segment(0xE1, xmp)),
            True,
        ),
        "exif without orientation": (le_exif((0x010F, 2, 6, b"Canon\x00")), True),
        "orientation 0": (le_exif(orientation_entry(0)), True),
        "orientation 9": (le_exif(orientation_entry(9)), True),
        "first of two orientation entries wins": (le_exif(orientation_entry(6), orientation_entry(3)), True),
        "empty exif": (with_segments(plain, jpeg_segment(0xE1, b"Exif\x00\x00")), True),
        "photoshop resources": (with_segments(plain, jpeg_segment(0xED, irb)), True),
        "fill bytes before a marker": (plain[:2] + b"\xff\xff" + plain[2:], True),
        "extended sequential sof1": (patched(plain, b"\xff\xc0", 1, b"\xc1"), True),
        # left to Pillow's path
        "mpo": (encoded(main, "MPO", save_all=True, append_images=[preview]), False),
        "lossless sof3": (patched(plain, b"\xff\xc0", 1, b"\xc3"), False),
        "arithmetic sof9": (patched(plain, b"\xff\xc0", 1, b"\xc9"), False),
        "12-bit precision": (patched(plain, b"\xff\xc0", 4, b"\x0c"), False),
        "height 0": (patched(plain, b"\xff\xc0", 5, b"\x00\x00"), False),
        "orientation stored as LONG": (le_exif((0x0112, 4, 1, struct.pack("<L", 6))), False),
        "exif not TIFF": (with_segments(plain, jpeg_segment(0xE1, b"Exif\x00\x00garbage!")), False),
        "exif IFD offset past the end": (
            with_segments(plain, exif_segment(b"II*\x00" + struct.pack("<L", 4000))),
            False,
        ),
        "XResolution as BYTE": (le_exif((0x011A, 1, 1, b"\x05"), (0x0128, 3, 1, b"\x02\x00")), False),
        "photoshop resource cut short": (with_segments(plain, jpeg_segment(0xED, irb[:20])), False),
        "short JFIF": (with_segments(plain[:2] + plain[20:], jpeg_segment(0xE0, b"JFIF\x00")), False),
        "short Adobe": (with_segments(plain, jpeg_segment(0xEE, b"Adobe")), False),
        "DQT cut short": (patched(plain, b"\xff\xdb", 2, b"\x00\x42"), False),
        "junk between segments": (plain[:20] + b"\x00" + plain[20:], False),
    }


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's notes on the damaged EXIF
@pytest.mark.parametrize("name", list(unusual_jpegs()))
def test_unusual_jpegs_agree_with_the_pillow_path(name):
    data, fast = unusual_jpegs()[name]
    assert_fast_path_agrees(data, fast=fast)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's notes on the damaged EXIF
def test_damaged_jpeg_headers_agree_with_the_pillow_path():
    # Random damage before and around the first scan, the part the fast path
    # reads itself: any disagreement in pixels, ImageInfo or error reason fails.
    rng = np.random.default_rng(0)
    bases = [
        with_segments(encoded(gradient(), "JPEG"), exif_segment(tiff_block([orientation_entry(6)]))),
        encoded(
            Image.fromarray(gradient()).convert("L"), "JPEG", progressive=True, exif=exif_with_orientation(3)
        ),
    ]
    taken = 0
    for _ in range(300):
        data = bytearray(bases[rng.integers(len(bases))])
        header_end = data.index(b"\xff\xda") + 14
        for _ in range(rng.integers(1, 4)):
            at = int(rng.integers(2, header_end))
            data[at] = int(rng.choice([0, 1, 2, 3, 6, 8, 9, 0x2A, 0xC2, 0xD9, 0xDA, 0xFF, rng.integers(256)]))
        fast = decoding._jpeg_header(bytes(data)) is not None
        assert_fast_path_agrees(bytes(data), fast=fast)
        taken += fast
    assert taken > 50  # the damage often leaves a header the fast path accepts


# --- damaged files -------------------------------------------------------------------------
# imagefiles.damaged_files(): damage that decoders meet with a warning on stderr, or not at
# all, while returning an image. Each must be a DecodeError, or, where the damage provably
# costs no pixel, exactly the undamaged file's image.

DAMAGED = damaged_files()
DAMAGED_JPEGS = [name for name in DAMAGED if name.endswith(".jpg")]


@pytest.mark.parametrize("name", list(DAMAGED))
def test_a_damaged_file_is_an_error_or_exactly_the_undamaged_image(tmp_path, name):
    damaged, undamaged = DAMAGED[name]
    path = write(tmp_path, name, damaged)
    if undamaged is None:
        error = decode_error(path)
        assert error.reason in ("corrupt", "truncated"), str(error)
        assert str(error).startswith(f"{path}: ")
    else:
        assert np.array_equal(decode_image(path), decode_bytes(undamaged)[0])


@pytest.mark.parametrize("name", list(DAMAGED))
def test_decoders_print_nothing_about_a_damaged_file(capfd, name):
    # libjpeg, libpng, libtiff and OpenCV write to file descriptor 2, naming no file;
    # what they know belongs in the DecodeError's message.
    with warnings.catch_warnings(record=True) as python_warnings:
        warnings.simplefilter("always")
        try:
            decode_bytes(DAMAGED[name][0], name=name)
        except DecodeError:
            pass
    assert capfd.readouterr() == ("", "")
    assert [str(w.message) for w in python_warnings] == []


NOISY = {**noisy_files(), **noisy_pillow_files()}


@pytest.mark.parametrize("name", list(NOISY))
def test_decoders_print_nothing_about_a_file_libpng_opencv_or_pillow_prints_about(capfd, name):
    # 16-bit PNGs went through libpng, which prints; OpenCV logged each BMP it refused;
    # Pillow warns (warnings) and logs (logging), both printed by Python on stderr.
    with warnings.catch_warnings(record=True) as python_warnings:
        warnings.simplefilter("always")
        try:
            decode_bytes(NOISY[name], name=name)
        except DecodeError as error:
            assert error.reason in ("corrupt", "truncated"), str(error)
    assert capfd.readouterr() == ("", "")
    assert [str(w.message) for w in python_warnings] == []


@pytest.mark.parametrize("name", ["16-bit png with a short icc profile.png",
                                  "16-bit png with data after the last row.png"])
def test_a_sixteen_bit_png_libpng_warns_about_keeps_every_pixel(name):
    grey = damage_source()[..., 0]
    assert np.array_equal(decode_bytes(NOISY[name])[0], np.repeat(grey[..., None], 3, axis=2))


def test_a_bmp_opencv_refuses_is_read_by_pillow():
    grey = damage_source()[..., 0]
    image = decode_bytes(NOISY["bmp with more colours than 8 bits hold.bmp"])[0]
    assert np.array_equal(image, np.repeat(grey[..., None], 3, axis=2))


# PyTorch training scripts often set ImageFile.LOAD_TRUNCATED_IMAGES = True, after which
# Pillow returns a cut or damaged GIF or PNG as pixels; augkit must not depend on it.


@pytest.fixture
def users_load_truncated_images(monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)


@pytest.mark.parametrize("name", list(DAMAGED))
def test_a_damaged_file_is_an_error_even_where_the_user_lets_pillow_load_truncated_images(
        users_load_truncated_images, name):
    damaged, undamaged = DAMAGED[name]
    if undamaged is None:
        assert decode_error(damaged).reason in ("corrupt", "truncated")
    else:
        assert np.array_equal(decode_bytes(damaged)[0], decode_bytes(undamaged)[0])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the user's setting, for the user's code


def test_the_users_pillow_settings_are_theirs_again_after_decodes_in_many_threads(
        users_load_truncated_images, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1234)
    files = [data for data, _ in DAMAGED.values()] * 4

    def result(data: bytes):
        kind, value, _ = outcome(lambda: decode_bytes(data))
        return kind, value if kind == "error" else value.tobytes()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        in_threads = list(pool.map(result, files))

    assert in_threads == [result(data) for data in files]
    assert (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS) == (True, 1234)


def test_the_users_warning_filters_and_pillow_log_level_are_theirs_again_after_a_decode():
    pil_logger = logging.getLogger("PIL")
    level = pil_logger.level
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        filters = list(warnings.filters)
        decode_error(NOISY["tiff with thousands of samples per pixel.tif"])
        assert warnings.filters == filters
    assert pil_logger.level == level


def test_opencv_logs_as_the_user_set_it_outside_augkits_decodes():
    level = cv2.utils.logging.getLogLevel()
    decode_bytes(NOISY["bmp with more colours than 8 bits hold.bmp"])
    assert cv2.utils.logging.getLogLevel() == level


@pytest.mark.parametrize("name", [name for name in DAMAGED_JPEGS if DAMAGED[name][1] is None])
def test_libjpeg_decodes_each_damaged_jpeg_with_nothing_but_a_warning(name):
    # What makes these a trap: a lenient decode returns a whole-sized image.
    damaged = DAMAGED[name][0]
    assert simplejpeg.decode_jpeg(damaged, "GRAY", strict=False).shape[:2] == (120, 160)
    with pytest.raises(ValueError, match="^(Corrupt JPEG data|Premature end of JPEG file)"):
        simplejpeg.decode_jpeg(damaged, "GRAY", strict=True)


@pytest.mark.parametrize("name", DAMAGED_JPEGS)
def test_a_damaged_jpeg_has_the_same_outcome_on_both_paths(name):
    damaged = DAMAGED[name][0]
    assert_fast_path_agrees(damaged, fast=decoding._jpeg_header(damaged) is not None)


def test_a_jpeg_damaged_mid_scan_is_corrupt_and_the_error_says_what_libjpeg_saw(tmp_path):
    path = write(tmp_path, "holiday.jpg", jpeg_damaged_mid_scan())
    error = decode_error(path)
    assert error.reason == "corrupt"
    assert re.fullmatch(rf"{re.escape(str(path))}: corrupt JPEG data \(libjpeg: \d+ extraneous bytes "
                        r"before marker 0xd9\)", str(error))


def test_junk_before_the_end_marker_is_not_excused_for_libjpeg_says_the_same_of_a_damaged_scan():
    junk, damaged = decode_error(jpeg_with_junk_before_end_marker()), decode_error(jpeg_damaged_mid_scan())
    assert junk.reason == damaged.reason == "corrupt"
    assert re.sub(r"\d+", "N", junk.detail) == re.sub(r"\d+", "N", damaged.detail)


def segment_end(jpeg: bytes, marker: bytes) -> int:
    at = jpeg.index(marker)
    return at + 2 + struct.unpack_from(">H", jpeg, at + 2)[0]


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_junk_after_a_metadata_segment_is_excused_on_both_paths(progressive):
    jpeg = encoded(gradient(), "JPEG", quality=90, progressive=progressive, exif=exif_with_orientation(3))
    at = segment_end(jpeg, b"\xff\xe1")
    _, image, info = assert_fast_path_agrees(jpeg[:at] + b"\x00\x07junk" + jpeg[at:], fast=False)
    assert np.array_equal(image, decode_bytes(jpeg)[0]) and info.orientation == 3


def test_junk_after_a_quantisation_table_is_not_excused():
    # It may be the rest of a table whose length field was damaged, read in part.
    jpeg = encoded(gradient(), "JPEG", quality=90)
    at = segment_end(jpeg, b"\xff\xdb")
    assert decode_error(jpeg[:at] + b"\x00" + jpeg[at:]).reason == "corrupt"


def test_a_jfif_version_libjpeg_does_not_know_is_excused():
    jpeg = encoded(gradient(), "JPEG", quality=90)
    assert jpeg[6:11] == b"JFIF\x00"
    unknown_version = jpeg[:11] + b"\x03" + jpeg[12:]
    with pytest.raises(ValueError, match="unknown JFIF revision"):
        simplejpeg.decode_jpeg(unknown_version, strict=True)
    _, image, _ = assert_fast_path_agrees(unknown_version)
    assert np.array_equal(image, decode_bytes(jpeg)[0])


def test_a_png_chunk_failing_its_crc_is_corrupt_and_named():
    error = decode_error(png_with_bad_idat_crc())
    assert error.reason == "corrupt"
    assert error.detail == "damaged PNG data (the IDAT chunk fails its CRC check)"


@pytest.mark.parametrize("name", list(good_images()))
def test_a_decoded_image_can_be_written_to_whichever_decoder_made_it(name):
    image, _ = decode_bytes(good_images()[name], name=name)
    assert image.flags.writeable and image.flags.c_contiguous


# --- encoding and writing -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jpg", "jpeg", "png", "webp"])
def test_encode_is_deterministic_and_decodable(fmt):
    source = gradient()
    first, second = encode_image(source, fmt), encode_image(source.copy(), fmt)
    assert first == second
    image, _ = decode_bytes(first)
    assert mean_abs_diff(image, source) <= (0 if fmt == "png" else 3)


def test_encode_quality_matters_for_jpeg_but_not_png():
    noisy = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert len(encode_image(noisy, "jpg", quality=50)) < len(encode_image(noisy, "jpg", quality=95))
    assert encode_image(noisy, "png", quality=50) == encode_image(noisy, "png", quality=95)


def test_encode_rejects_bad_arguments():
    with pytest.raises(ValueError, match="gif"):
        encode_image(gradient(), "gif")
    with pytest.raises(ValueError, match="RGB uint8"):
        encode_image(gradient().astype(np.float32), "png")
    with pytest.raises(ValueError, match="RGB uint8"):
        encode_image(gradient()[:, :, 0], "png")
    with pytest.raises(ValueError, match="quality"):
        encode_image(gradient(), "jpg", quality=0)


def test_write_image_atomic_creates_parents_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out" / "class a" / "caf\u00e9.png"
    write_image_atomic(target, gradient())
    assert os.listdir(target.parent) == ["caf\u00e9.png"]
    assert np.array_equal(decode_image(target), gradient())
    # Overwriting replaces the content in one step.
    write_image_atomic(target, 255 - gradient())
    assert os.listdir(target.parent) == ["caf\u00e9.png"]
    assert np.array_equal(decode_image(target), 255 - gradient())


def test_write_image_atomic_format_from_suffix_or_argument(tmp_path):
    write_image_atomic(tmp_path / "a.JPG", gradient())
    write_image_atomic(tmp_path / "b.bin", gradient(), fmt="webp")
    assert decode_image_with_info(tmp_path / "a.JPG")[1].format == "JPEG"
    assert decode_image_with_info(tmp_path / "b.bin")[1].format == "WEBP"


def test_write_image_atomic_unsupported_format_writes_nothing(tmp_path):
    with pytest.raises(ValueError):
        write_image_atomic(tmp_path / "new" / "a.gif", gradient())
    with pytest.raises(ValueError):
        write_image_atomic(tmp_path / "a.png", gradient(), fmt="tiff")
    assert os.listdir(tmp_path) == []


def test_write_image_atomic_failure_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    target = tmp_path / "a.png"
    write_image_atomic(target, gradient())

    def refuse(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(decoding.os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        write_image_atomic(target, 255 - gradient())

    assert os.listdir(tmp_path) == ["a.png"]
    assert np.array_equal(decode_image(target), gradient())
