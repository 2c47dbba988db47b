"""augkit.input.encoding: the pictures a command writes name augkit and the command inside,
where every decoder skips it, so a rerun may replace its own picture and never a user's."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from augkit.input.decoding import decode_image
from augkit.input.encoding import encode_image, written_by
from conftest import make_structured_rgb
from imagefiles import encoded


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_a_marked_picture_names_its_command_and_decodes_to_the_same_pixels(fmt, tmp_path):
    image = make_structured_rgb(40, 60)
    path = tmp_path / f"grid.{fmt}"
    path.write_bytes(encode_image(image, fmt, mark="preview"))
    plain = cv2.imdecode(np.frombuffer(encode_image(image, fmt), np.uint8), cv2.IMREAD_COLOR)

    assert written_by(path) == "preview"
    assert np.array_equal(cv2.imread(str(path)), plain)
    with Image.open(path) as img:
        assert np.array_equal(np.asarray(img.convert("RGB")), decode_image(path))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_a_users_picture_and_an_unmarked_one_name_no_command(fmt, tmp_path):
    mine = tmp_path / "mine"
    mine.write_bytes(encoded(make_structured_rgb(20, 30), fmt))
    ours_unmarked = tmp_path / "out"
    ours_unmarked.write_bytes(encode_image(make_structured_rgb(20, 30), fmt.lower()))
    assert written_by(mine) is None and written_by(ours_unmarked) is None
    assert written_by(tmp_path / "missing.png") is None


def test_a_png_marked_before_marks_named_the_command_reads_as_augkits_with_no_command(tmp_path):
    png = encode_image(make_structured_rgb(20, 30), "png")
    chunk = b"tEXt" + b"Software\x00augkit"  # what train-head and predict --plot wrote then
    end_of_header = 8 + 8 + 13 + 4
    old = png[:end_of_header] + struct.pack(">I", len(chunk) - 4) + chunk + \
        struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF) + png[end_of_header:]
    (tmp_path / "c.png").write_bytes(old)
    assert written_by(tmp_path / "c.png") == ""
