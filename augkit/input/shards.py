"""The WebDataset tar shard format: reading members by offset, writing shards byte for byte.

A shard is a plain (uncompressed) tar file. WebDataset groups its members into samples by
name: ``cat/x_00.jpg``, ``cat/x_00.cls`` and ``cat/x_00.json`` are the members ``jpg``,
``cls`` and ``json`` of the sample whose ``__key__`` is ``cat/x_00`` (the name up to the
first dot of its last part: :func:`split_name`, WebDataset's own rule).

Reading: :func:`index_shard` lists a shard's regular members with their offsets and sizes
(reading the headers only, seeking over the data: plain ustar headers directly, any other
through tarfile), and reads only the small members asked for (labels). A sample's image is then a :class:`ShardMember`: a ``str`` naming
``SHARD/MEMBER`` that also holds the shard's path, the member's offset and its size, so
a worker reads its bytes with one seek and one read, and decodes them like a file's.

Writing: :class:`ShardWriter` writes members whose headers depend on nothing but their
names and sizes (fixed mtime, mode, owner; PAX format, UTF-8 names), so the same samples
in the same order are the same bytes on any machine.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
from dataclasses import dataclass, field
from typing import BinaryIO

from augkit.core.errors import UsageError
from augkit.input.decode_error import DecodeError

TAR_SUFFIX = ".tar"
# WebDataset's base_plus_ext: the key is the name up to the first dot of its last part.
_NAME = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")
# WebDataset skips members named like __meta__ (and everything under such a folder).
_META = re.compile(r"__[^/]*__($|/)")
# Members read while indexing (labels, their names) are small; a bigger one is no label.
SMALL_MEMBER = 1 << 16

MTIME = 0  # every member's header: fixed, so shards do not depend on when they were written
MODE = 0o644


def split_name(name: str) -> tuple[str, str] | None:
    """``(key, extension)`` of a member name by WebDataset's rule (the extension lower-cased),
    or None for a name WebDataset passes over (no dot, ``__meta__``). A hidden name
    (``cat/.x.jpg``) splits as WebDataset splits it, into a key ``cat/`` and an extension
    ``x.jpg`` that is no image's."""
    if "__" in name and _META.match(name):
        return None
    match = _NAME.match(name)
    return (match.group(1), match.group(2).lower()) if match else None


class ShardMember(str):
    """A sample's path when its image is a member of a tar shard.

    Its text is ``SHARD/MEMBER`` (what messages and reports show); ``shard``, ``offset``
    and ``size`` say where its bytes are. ``problem`` is set for a member that cannot be
    used (a damaged shard, a bad label): reading it raises a DecodeError saying why, so it
    becomes a failure row like a bad file, in whichever stage reads it.
    """

    shard: str
    member: str
    offset: int
    size: int
    problem: tuple[str, str] | None  # (reason, detail)

    def __new__(cls, shard: str, member: str, offset: int, size: int, problem: tuple[str, str] | None = None):
        self = super().__new__(cls, f"{shard}/{member}" if member else shard)
        self.shard, self.member, self.offset, self.size, self.problem = shard, member, offset, size, problem
        return self

    def __reduce__(self):
        return ShardMember, (self.shard, self.member, self.offset, self.size, self.problem)

    def read(self) -> bytes:
        """The member's bytes: DecodeError when the shard ends inside it, or when the
        member cannot be used; OSError as for a file (a shard removed since: missing)."""
        if self.problem is not None:
            raise DecodeError(self, *self.problem)
        with open(self.shard, "rb") as f:
            f.seek(self.offset)
            data = f.read(self.size)
        if len(data) < self.size:
            raise DecodeError(self, "truncated", f"the shard ends inside this member ({len(data)} of {self.size} "
                                                 f"bytes; an incomplete download or copy?)")
        return data

    def open(self) -> BinaryIO:
        """The member's bytes as a read-only binary file (a bounded view of the shard: what
        lies around the member is out of reach, and only what is read is read); DecodeError
        for a member that cannot be used, OSError as for a file."""
        if self.problem is not None:
            raise DecodeError(self, *self.problem)
        return io.BufferedReader(_MemberView(self.shard, self.offset, self.size))

    def stamp(self) -> tuple[int, int] | None:
        """(member size, the shard's mtime in ns): a shard replaced or edited since counts as
        every one of its members changed (see :func:`augkit.core.files.file_stamp`)."""
        try:
            return self.size, os.stat(self.shard).st_mtime_ns
        except OSError:
            return None


class _MemberView(io.RawIOBase):
    """Bytes ``[offset, offset + size)`` of a shard, as a file of ``size`` bytes."""

    def __init__(self, shard: str, offset: int, size: int):
        self._file = open(shard, "rb")
        self._offset, self._size, self._position = offset, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        wanted = max(0, min(len(buffer), self._size - self._position))
        if not wanted:
            return 0
        self._file.seek(self._offset + self._position)
        got = self._file.readinto(memoryview(buffer)[:wanted])
        self._position += got
        return got

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        position = offset + {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._position = position
        return position

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


@dataclass
class Member:
    name: str
    offset: int
    size: int
    parts: tuple[str, str] | None = None  # split_name(name)
    data: bytes | None = None  # read while indexing: the small members asked for


@dataclass
class ShardIndex:
    members: list[Member] = field(default_factory=list)  # regular members, in tar order
    problem: str | None = None  # why the rest of the shard (or all of it) cannot be read


def index_shard(path: str, read: frozenset[str] = frozenset()) -> ShardIndex:
    """The regular members of a shard, in order, with the data of those whose extension is
    in ``read`` (when small). A shard damaged part way keeps the members before the damage
    and says what is wrong with the rest in ``problem``.

    Plain ustar headers, what most shards hold, are read here directly (:func:`_index_ustar`):
    tarfile's header parsing took ~40 us a member, 2 minutes for a million samples of three
    members (benchmarks/RESULTS.md, "Tar shards"). Anything else is tarfile's to read."""
    quick = _index_ustar(path, read)
    return quick if quick is not None else _index_tarfile(path, read)


_REGULAR = (b"0", b"\0", b"7")  # tarfile's regular types, sparse files aside
_FOLDER = b"5"


def _index_ustar(path: str, read: frozenset[str]) -> ShardIndex | None:
    """index_shard's answer from ustar headers read one by one (a pread each); None at the
    first header that is not a plain one (PAX or GNU long names, links, sparse files), a
    checksum that fails, or a member the file does not hold whole: tarfile then reads the
    shard, and says what is wrong."""
    pread = getattr(os, "pread", None)
    if pread is None:
        return None
    index = ShardIndex()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        length, pos = os.fstat(fd).st_size, 0
        while True:
            header = pread(fd, tarfile.BLOCKSIZE, pos)
            if not header.strip(b"\0"):  # end-of-archive: the rest must be zeros too
                return index if pos and not pread(fd, 2 * tarfile.BLOCKSIZE, pos).strip(b"\0") else None
            parsed = _ustar_header(header)
            if parsed is None or pos + tarfile.BLOCKSIZE + parsed[1] > length:
                return None
            name, size, kind = parsed
            if kind != _FOLDER:
                parts = split_name(name)
                member = Member(name, pos + tarfile.BLOCKSIZE, size, parts)
                if parts is not None and parts[1] in read and size <= SMALL_MEMBER:
                    member.data = pread(fd, size, member.offset)
                index.members.append(member)
            pos += tarfile.BLOCKSIZE + -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
    finally:
        os.close(fd)


def _ustar_header(header: bytes) -> tuple[str, int, bytes] | None:
    """(name, size, type) of a plain ustar header of a file or folder, else None."""
    kind = header[156:157]
    if kind not in _REGULAR and kind != _FOLDER or header[124] & 0x80:  # base-256 sizes: tarfile's
        return None
    try:
        checksum = int(header[148:156].split(b"\0", 1)[0].strip() or b"-1", 8)
        size = int(header[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
    except ValueError:
        return None
    if checksum != 256 + sum(header[:148]) + sum(header[156:]):
        return None
    name = header[:100].split(b"\0", 1)[0]
    if header[257:263] == b"ustar\0":  # POSIX: a long name's head is in the prefix field (GNU's is not)
        prefix = header[345:500].split(b"\0", 1)[0]
        name = prefix + b"/" + name if prefix else name
    return name.decode("utf-8", "surrogateescape"), size, kind


def _index_tarfile(path: str, read: frozenset[str]) -> ShardIndex:
    """index_shard's answer as tarfile reads the shard (any format it knows)."""
    index = ShardIndex()
    try:
        with tarfile.open(path, mode="r:", encoding="utf-8", errors="surrogateescape") as tar:
            for info in tar:
                if not info.isreg():
                    continue
                parts = split_name(info.name)
                member = Member(info.name, info.offset_data, info.size, parts)
                if parts is not None and parts[1] in read and info.size <= SMALL_MEMBER:
                    member.data = tar.extractfile(info).read()
                index.members.append(member)
            end = tar.offset
    except (tarfile.TarError, EOFError) as exc:
        index.problem = _damage(path, exc, len(index.members))
        return index
    if not _ends_at(path, end):  # tarfile takes a damaged header for the end of the archive
        index.problem = _damage(path, "a damaged member header", len(index.members))
    return index


def _ends_at(path: str, offset: int) -> bool:
    """Whether the tar ends at ``offset``: end-of-archive zeros, or the end of the file."""
    with open(path, "rb") as f:
        f.seek(offset)
        return not f.read(2 * tarfile.BLOCKSIZE).strip(b"\0")


def _damage(path: str, exc: Exception | str, read_so_far: int) -> str:
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head == b"\xfd7zX" or head == b"\x28\xb5\x2f\xfd":
        return ("is a compressed tar; members are read by offset, so shards must be plain .tar: decompress it "
                "(e.g. gunzip, zstd -d)")
    if read_so_far == 0:
        return f"is not a tar archive ({exc})"
    return f"is damaged after its first {read_so_far} members ({exc}); the rest cannot be read"


# --- writing ---------------------------------------------------------------------------------


class ShardWriter:
    """Members into a tar written to ``f``, with headers that depend only on the names and
    sizes. ``f`` None: nothing is written, only ``size`` counted (to measure samples)."""

    def __init__(self, f: BinaryIO | None):
        self.size = 0  # bytes of the members so far: headers, data and padding
        self._tar = None if f is None else tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT,
                                                        encoding="utf-8", errors="surrogateescape")

    def add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), MTIME, MODE
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.type = tarfile.REGTYPE
        if self._tar is None:
            header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
            self.size += len(header) + -(-len(data) // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
            return
        before = self._tar.offset
        self._tar.addfile(info, io.BytesIO(data))
        self.size += self._tar.offset - before

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is None:
            self.close()


def member_keys(stems: list[str]) -> dict[str, str]:
    """A WebDataset ``__key__`` for each output name without its extension (``cat/x_00``):
    the name itself, with any dot of its last part made ``_`` (WebDataset would cut the key
    there) and, should that make two keys one, a short hash of the name added. A name
    WebDataset would skip whatever its last part (a folder named ``__x__``) is a UsageError."""
    keys = {}
    for stem in stems:
        folder, _, last = stem.rpartition("/")
        plain = last.replace(".", "_")
        keys[stem] = f"{folder}/{plain}" if folder else plain
    taken: dict[str, int] = {}
    for key in keys.values():
        taken[key] = taken.get(key, 0) + 1
    for stem, key in keys.items():
        if taken[key] > 1:
            keys[stem] = f"{key}-{hashlib.blake2b(stem.encode('utf-8', 'surrogateescape'), digest_size=3).hexdigest()}"
        if split_name(f"{keys[stem]}.x") != (keys[stem], "x"):
            raise UsageError(f"{stem}: cannot be a WebDataset key (WebDataset skips members named __x__ and what is "
                             f"under such folders); rename that folder or label")
    return keys
