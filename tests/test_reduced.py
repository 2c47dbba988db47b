"""Decoding at the size a consumer needs (augkit.input.reduced, and decode_bytes' size_hint).

The rule: a JPEG is decoded at the smallest of 1/2, 1/4 and 1/8 of its size that divides
both sides and still meets every minimum of the hint, in the displayed (EXIF-oriented)
size; never below it, never at a scale that changes the consumer's output size; anything
else is decoded whole.
"""

from __future__ import annotations

import itertools
import numpy as np
import pytest
import simplejpeg

from augkit.input import decoding
from augkit.input.decoding import DecodeError, decode_bytes, decode_image_with_info
from augkit.input.reduced import SCALES, SizeHint, displayed, reduced_size, reduction
from conftest import make_structured_rgb
from imagefiles import _orientation_exif, damaged_files, encoded


def shorter_to_256(height: int, width: int) -> tuple[int, int]:
    """The output size of a resize of the shorter side to 256 (as SmallestMaxSize rounds)."""
    scale = 256 / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _photo(height: int = 1200, width: int = 1600, seed: int = 3) -> np.ndarray:
    return make_structured_rgb(height, width, seed)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return _photo()


@pytest.fixture(scope="module")
def photo_jpeg(photo) -> bytes:
    return encoded(photo, "JPEG", quality=92)


# --- the rule -----------------------------------------------------------------------------


def test_the_smallest_scale_that_still_meets_the_target_is_chosen():
    assert reduction(3000, 4000, SizeHint(shorter=256)) == 8  # 375 x 500
    assert reduction(3000, 4000, SizeHint(shorter=400)) == 4  # 750 x 1000
    assert reduction(3000, 4000, SizeHint(shorter=1000)) == 2  # 1500 x 2000
    assert reduction(3000, 4000, SizeHint(shorter=1501)) == 1
    assert reduction(3000, 4000, SizeHint(longer=500)) == 8
    assert reduction(3000, 4000, SizeHint(height=224, width=1000)) == 4


def test_without_a_hint_or_on_a_small_image_the_full_size_is_decoded():
    assert reduction(3000, 4000, None) == 1
    assert reduction(375, 500, SizeHint(shorter=256)) == 1
    assert reduction(200, 300, SizeHint(height=224, width=224)) == 1


def test_the_reduced_size_is_rounded_up_as_libjpeg_rounds_it():
    assert reduced_size(3001, 4001, 8) == (376, 501)
    assert reduced_size(3000, 4000, 8) == (375, 500)
    assert reduced_size(7, 9, 2) == (4, 5)


def test_only_a_scale_that_divides_both_sides_is_used_so_nothing_moves():
    hint = SizeHint(shorter=256)
    assert reduction(3004, 4000, hint) == 4  # 8 does not divide 3004
    assert reduction(3000, 4002, hint) == 2
    assert reduction(3001, 4000, hint) == 1
    assert reduction(4000, 3000, hint) == 8


def test_an_image_whose_sides_no_scale_divides_is_decoded_whole():
    data = encoded(_photo(1203, 1600), "JPEG", quality=90)
    rgb, info = decode_bytes(data, size_hint=SizeHint(shorter=150))
    assert info.scale == 1 and rgb.shape == (1203, 1600, 3)


@pytest.mark.parametrize("height, width", [(3000, 4000), (3001, 4003), (1944, 2592), (4032, 3024), (257, 2000), (999, 999)])
@pytest.mark.parametrize("hint", [SizeHint(shorter=256), SizeHint(longer=300), SizeHint(height=224, width=224),
                                  SizeHint(height=640, width=100), SizeHint(shorter=700, longer=900)])
def test_a_reduced_image_is_never_below_the_target_and_the_next_scale_would_be(height, width, hint):
    scale = reduction(height, width, hint)
    h, w = reduced_size(height, width, scale)
    assert height % scale == 0 and width % scale == 0
    if scale > 1:
        assert hint.met_by(h, w)
    smaller = [s for s in SCALES if s > scale]
    assert all(height % s or width % s or not hint.met_by(*reduced_size(height, width, s)) for s in smaller)


def test_a_scale_that_would_change_the_output_size_is_not_used():
    def half_of_it(height: int, width: int) -> tuple[int, int]:  # a consumer whose output follows its input
        return height // 2, width // 2

    assert reduction(3000, 4000, SizeHint(shorter=256, shapes=(half_of_it,))) == 1
    # The consumers' real rules (a resize keeping the aspect ratio) give the same size at
    # any scale that divides both sides; the test of augkit.recipes.size_hint shows it.
    assert reduction(3000, 4000, SizeHint(shorter=256, shapes=(shorter_to_256,))) == 8


def test_the_displayed_size_is_the_stored_one_turned_a_quarter_for_orientations_5_to_8():
    assert [displayed(30, 40, o) for o in range(1, 9)] == [(30, 40)] * 4 + [(40, 30)] * 4


def test_two_consumers_of_one_image_need_what_both_need():
    rule = shorter_to_256
    both = SizeHint(shorter=256, shapes=(rule,)) & SizeHint(height=300, width=100)
    assert (both.height, both.width, both.shorter, both.longer, both.shapes) == (300, 100, 256, 0, (rule,))


# --- decode_bytes with a size hint -------------------------------------------------------


def test_a_hinted_jpeg_comes_out_at_the_reduced_size_with_libjpegs_own_scaled_pixels(photo_jpeg):
    rgb, info = decode_bytes(photo_jpeg, size_hint=SizeHint(shorter=256))
    assert rgb.shape == (300, 400, 3) and info.scale == 4
    assert (info.width, info.height) == (400, 300)
    assert "decoded at 1/4 scale" in info.notes
    np.testing.assert_array_equal(rgb, simplejpeg.decode_jpeg(photo_jpeg, "RGB", min_height=300, min_width=400))


def test_a_reduced_decode_stays_within_a_grey_level_or_two_of_a_full_decode_shrunk_by_area(photo_jpeg):
    import cv2

    reduced, _ = decode_bytes(photo_jpeg, size_hint=SizeHint(shorter=150))
    full, _ = decode_bytes(photo_jpeg)
    area = cv2.resize(full, reduced.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(reduced.astype(int) - area).mean() < 2.0


def test_without_a_hint_every_jpeg_is_decoded_whole(photo_jpeg, photo):
    rgb, info = decode_bytes(photo_jpeg)
    assert rgb.shape == photo.shape and info.scale == 1
    assert not any("scale" in note for note in info.notes)


def test_the_scale_is_chosen_on_the_displayed_orientation(photo):
    # Stored 1600 wide, 1200 high; orientation 6 shows it 1200 wide, 1600 high.
    data = encoded(photo, "JPEG", quality=90, exif=_orientation_exif(6))
    hint = SizeHint(height=700, width=100)  # rows as displayed: 1/2 gives 800, 1/4 only 400
    rgb, info = decode_bytes(data, size_hint=hint)
    assert info.scale == 2 and rgb.shape == (800, 600, 3)
    upright = np.rot90(simplejpeg.decode_jpeg(data, "RGB", min_height=600, min_width=800), k=-1)
    np.testing.assert_array_equal(rgb, upright)
    plain = encoded(photo, "JPEG", quality=90)  # stored rows: 1/4 gives 300 < 700, 1/2 600 < 700
    assert decode_bytes(plain, size_hint=hint)[1].scale == 1


@pytest.mark.parametrize("kind", ["grey", "progressive", "upside down (EXIF 3)"])
def test_grey_progressive_and_upside_down_jpegs_are_reduced_too(photo, kind):
    if kind == "grey":
        data = encoded(photo[..., 1], "JPEG", quality=90)
    elif kind == "progressive":
        data = encoded(photo, "JPEG", quality=90, progressive=True)
    else:
        data = encoded(photo, "JPEG", quality=90, exif=_orientation_exif(3))
    rgb, info = decode_bytes(data, size_hint=SizeHint(shorter=150))
    assert info.scale == 8 and rgb.shape == (150, 200, 3)


def test_a_cmyk_jpeg_is_reduced_by_pillows_draft_to_the_same_scale(photo):
    from PIL import Image

    data = encoded(Image.fromarray(photo).convert("CMYK"), "JPEG", quality=90)
    rgb, info = decode_bytes(data, size_hint=SizeHint(shorter=300))
    assert info.scale == 4 and rgb.shape == (300, 400, 3)
    full = decode_bytes(data)[0].astype(np.float64)
    blocks = full.reshape(300, 4, 400, 4, 3).mean(axis=(1, 3))
    assert np.abs(rgb - blocks).mean() < 2.0


def test_other_formats_are_decoded_whole_whatever_the_hint(photo):
    for fmt in ("PNG", "WEBP", "BMP"):
        rgb, info = decode_bytes(encoded(photo, fmt), size_hint=SizeHint(shorter=150))
        assert rgb.shape == photo.shape and info.scale == 1


def test_the_pixel_limit_applies_to_the_stored_size_whatever_the_hint(photo_jpeg):
    with pytest.raises(DecodeError) as caught:
        decode_bytes(photo_jpeg, max_pixels=1_000_000, size_hint=SizeHint(shorter=150))
    assert caught.value.reason == "too_large"


@pytest.mark.parametrize("name", [n for n in damaged_files() if n.endswith(".jpg")])
def test_a_damaged_jpeg_fails_the_same_way_decoded_reduced(name):
    data, undamaged = damaged_files()[name]
    hint = SizeHint(shorter=15)  # the files are 120x160: 1/8
    try:
        expected = decode_bytes(data)[0].shape
    except DecodeError as exc:
        with pytest.raises(DecodeError) as caught:
            decode_bytes(data, size_hint=hint)
        assert caught.value.reason == exc.reason
    else:
        assert undamaged is not None and expected == (120, 160, 3)
        assert decode_bytes(data, size_hint=hint)[0].shape == (15, 20, 3)


def test_decode_image_passes_the_hint_on(tmp_path, photo_jpeg):
    path = tmp_path / "photo.jpg"
    path.write_bytes(photo_jpeg)
    rgb, info = decode_image_with_info(path, size_hint=SizeHint(shorter=256))
    assert info.scale == 4 and rgb.shape == (300, 400, 3)
    assert decoding.decode_image(path, size_hint=SizeHint(shorter=256)).shape == (300, 400, 3)
