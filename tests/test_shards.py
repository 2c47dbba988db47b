"""The WebDataset tar shard format (augkit.input.shards): members read by offset, shards
written byte for byte the same."""

from __future__ import annotations

import io
import pickle
import tarfile
import time

import pytest

from augkit.core.errors import UsageError
from augkit.core.files import file_stamp
from augkit.input.decode_error import DecodeError
from augkit.input.decoding import decode_image
from augkit.input.shards import ShardMember, ShardWriter, index_shard, member_keys, split_name
from conftest import make_structured_rgb
from imagefiles import encoded
from shardfiles import tar_of


def written(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with ShardWriter(buf) as writer:
        for name, data in members:
            writer.add(name, data)
    return buf.getvalue()


@pytest.mark.parametrize("name, parts", [
    ("cat/x_00.jpg", ("cat/x_00", "jpg")),
    ("x.seg.PNG", ("x", "seg.png")),  # the extension is all after the first dot, lower-cased
    ("class.1/x.jpg", ("class.1/x", "jpg")),  # dots in folders are part of the key
    ("README", None),  # no extension
    ("cat/.hidden.jpg", ("cat/", "hidden.jpg")),  # as WebDataset has it: no image extension
    ("__meta__/x.json", None),  # under a __folder__
])
def test_member_names_split_into_key_and_extension_by_webdatasets_rule(name, parts):
    assert split_name(name) == parts
    wds = pytest.importorskip("webdataset.tariterators")
    if parts is not None:
        key, ext = wds.base_plus_ext(name)
        assert (key, ext.lower()) == parts


def test_the_same_members_are_the_same_bytes_whenever_and_wherever_written():
    members = [("cat/x_00.jpg", b"\xff\xd8" + bytes(700)), ("cat/x_00.cls", b"0"), ("cat/x_00.json", b"{}")]
    first = written(members)
    time.sleep(0.01)
    assert written(members) == first
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        infos = tar.getmembers()
    assert [i.name for i in infos] == [name for name, _ in members]
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname, i.mode) for i in infos} == {(0, 0, 0, "", "", 0o644)}


def test_long_and_non_ascii_names_are_written_as_pax_and_read_back_whole():
    name = "caf\u00e9 \u732b/" + "long_" * 40 + "x_00.jpg"
    data = written([(name, b"abc")])
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.getnames() == [name]
        assert tar.extractfile(name).read() == b"abc"
    assert written([(name, b"abc")]) == data


def test_counting_without_a_file_gives_the_bytes_the_members_take_in_a_shard():
    members = [("a.jpg", bytes(1000)), ("a.cls", b"3"), ("a.json", b'{"x": 1}'), ("b" * 150 + ".png", bytes(513))]
    counter = ShardWriter(None)
    real = io.BytesIO()
    writer = ShardWriter(real)
    for name, data in members:
        counter.add(name, data)
        writer.add(name, data)
    assert counter.size == writer.size == len(real.getvalue())  # before the end-of-archive blocks


def test_a_members_offset_and_size_read_its_bytes_and_decode_like_a_file(tmp_path):
    image = make_structured_rgb(30, 40)
    png = encoded(image, "PNG")
    shard = tar_of(tmp_path / "s.tar", [("a.cls", b"1"), ("a.png", png), ("a.json", b"{}")])
    index = index_shard(str(shard), frozenset({"cls"}))
    assert index.problem is None
    by_name = {m.name: m for m in index.members}
    assert by_name["a.cls"].data == b"1" and by_name["a.png"].data is None  # only what was asked for
    member = ShardMember(str(shard), "a.png", by_name["a.png"].offset, by_name["a.png"].size)
    assert member.read() == png and str(member) == f"{shard}/a.png"
    assert (decode_image(member) == image).all()


def test_a_member_opens_as_a_file_of_its_own_bytes_only(tmp_path):
    from PIL import Image

    png = encoded(make_structured_rgb(30, 40), "PNG")
    shard = tar_of(tmp_path / "s.tar", [("a.png", png), ("b.txt", b"after")])
    member = ShardMember(str(shard), "a.png", 512, len(png))
    with member.open() as f:
        assert f.read(8) == png[:8] and f.tell() == 8
        f.seek(-4, io.SEEK_END)
        assert f.read() == png[-4:] and f.read() == b""  # the member ends there, not the shard
        f.seek(0)
        assert f.read() == png
        f.seek(0)
        with Image.open(f) as img:
            assert img.size == (40, 30)
    with pytest.raises(DecodeError, match="its cls member holds 'x'"):
        ShardMember("s.tar", "a.png", 512, 10, ("corrupt", "its cls member holds 'x'")).open()


def test_a_member_pickles_with_where_its_bytes_are(tmp_path):
    shard = tar_of(tmp_path / "s.tar", [("a.png", b"x" * 10)])
    member = ShardMember(str(shard), "a.png", 512, 10)
    again = pickle.loads(pickle.dumps(member))
    assert (again, again.shard, again.offset, again.size, again.read()) == (member, str(shard), 512, 10, b"x" * 10)


def test_a_shard_cut_inside_a_member_makes_that_member_truncated(tmp_path):
    png = encoded(make_structured_rgb(30, 40), "PNG")
    shard = tar_of(tmp_path / "s.tar", [("a.png", png)])
    member = ShardMember(str(shard), "a.png", 512, len(png))
    shard.write_bytes(shard.read_bytes()[:512 + len(png) // 2])
    with pytest.raises(DecodeError) as caught:
        decode_image(member)
    assert caught.value.reason == "truncated" and "a.png" in str(caught.value)


def test_a_shard_removed_since_makes_its_members_missing(tmp_path):
    member = ShardMember(str(tmp_path / "gone.tar"), "a.png", 512, 10)
    with pytest.raises(DecodeError) as caught:
        decode_image(member)
    assert caught.value.reason == "missing"


def test_a_member_with_a_problem_raises_it_when_read():
    member = ShardMember("s.tar", "a.png", 512, 10, ("corrupt", "its cls member holds 'x'"))
    with pytest.raises(DecodeError, match="s.tar/a.png: its cls member holds 'x'") as caught:
        member.read()
    assert caught.value.reason == "corrupt"


def test_a_members_stamp_changes_when_its_shard_is_replaced(tmp_path):
    shard = tar_of(tmp_path / "s.tar", [("a.png", b"x" * 10)])
    member = ShardMember(str(shard), "a.png", 512, 10)
    before = file_stamp(member)
    assert before is not None and before[0] == 10
    time.sleep(0.01)
    tar_of(tmp_path / "s.tar", [("a.png", b"y" * 10)])
    assert file_stamp(member) != before


def test_a_shard_damaged_part_way_keeps_the_members_before_the_damage(tmp_path):
    shard = tar_of(tmp_path / "s.tar", [("a.png", bytes(600)), ("b.png", bytes(600)), ("c.png", bytes(600))])
    data = bytearray(shard.read_bytes())
    data[512 * 6 + 148:512 * 6 + 156] = b"garbage!"  # c.png's header checksum
    shard.write_bytes(bytes(data))
    index = index_shard(str(shard))
    assert [m.name for m in index.members] == ["a.png", "b.png"]
    assert "damaged after its first 2 members" in index.problem


@pytest.mark.parametrize("compress, word", [("gz", "compressed"), (None, "not a tar archive")])
def test_a_shard_that_is_not_a_plain_tar_says_what_it_is(tmp_path, compress, word):
    path = tmp_path / "s.tar"
    if compress:
        with tarfile.open(path, f"w:{compress}") as tar:
            tar.addfile(tarfile.TarInfo("a.png"), io.BytesIO(b""))
    else:
        path.write_bytes(b"<html>not found</html>" * 40)
    index = index_shard(str(path))
    assert index.members == [] and word in index.problem


def test_member_keys_are_the_output_names_with_dots_made_underscores_and_clashes_told_apart():
    keys = member_keys(["cat/x_00", "cat/img.v2_00", "cat/img_v2_00", "class.1/y_00"])
    assert keys["cat/x_00"] == "cat/x_00" and keys["class.1/y_00"] == "class.1/y_00"
    assert keys["cat/img.v2_00"].startswith("cat/img_v2_00-") and keys["cat/img_v2_00"].startswith("cat/img_v2_00-")
    assert len(set(keys.values())) == 4
    assert all(split_name(f"{key}.jpg") == (key, "jpg") for key in keys.values())


def test_an_output_name_webdataset_would_skip_is_a_usage_error():
    with pytest.raises(UsageError, match="__meta__/x_00: cannot be a WebDataset key"):
        member_keys(["__meta__/x_00"])


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_headers_read_directly_index_a_shard_as_tarfile_does_in_every_format(tmp_path, fmt):
    from augkit.input.shards import _index_tarfile, _index_ustar

    names = ["a.png", "a.cls", "d/" * 60 + "long.png", "caf\u00e9.png", "sub/b.png", "sub/b.cls"]
    shard = tar_of(tmp_path / "s.tar", [(name, bytes(range(i * 37 % 250))) for i, name in enumerate(names)], fmt)
    with tarfile.open(shard, "a", format=fmt) as tar:  # a folder entry, as `tar cf` writes them
        folder = tarfile.TarInfo("sub")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
    quick = _index_ustar(str(shard), frozenset({"cls"}))
    if quick is not None:  # None: a header it leaves to tarfile (a PAX or GNU long name)
        assert quick == _index_tarfile(str(shard), frozenset({"cls"}))
    assert index_shard(str(shard), frozenset({"cls"})) == _index_tarfile(str(shard), frozenset({"cls"}))
    assert [m.name for m in index_shard(str(shard)).members] == names


def test_the_shards_augkit_writes_are_indexed_without_tarfile(tmp_path):
    from augkit.input.shards import _index_ustar

    path = tmp_path / "s.tar"
    path.write_bytes(written([("cat/x_00.jpg", bytes(700)), ("cat/x_00.cls", b"0"), ("cat/x_00.json", b"{}")]))
    assert [m.name for m in _index_ustar(str(path), frozenset()).members] == ["cat/x_00.jpg", "cat/x_00.cls",
                                                                               "cat/x_00.json"]
