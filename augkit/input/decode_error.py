"""Why an image file could not be read: :class:`DecodeError`, its reason codes and its words.

Apart from the decoder so that the modules that do the decoding (:mod:`augkit.input.decoding`,
:mod:`augkit.input.pixels`) raise the one error without importing each other.
"""

from __future__ import annotations

from augkit.core.errors import SampleError

REASONS = frozenset("missing empty not_an_image too_large truncated corrupt unsupported".split())


class DecodeError(SampleError):
    """An image could not be decoded; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, path: str, reason: str, detail: str):
        # All three go to Exception.__init__ so the error pickles across
        # multiprocessing workers (pickle re-calls cls(*args)).
        super().__init__(path, reason, detail)
        self.path = path
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        # Messages end up in one-line-per-file logs; embedded newlines from
        # library error texts would break that.
        return f"{self.path}: {self.detail}".replace("\r", " ").replace("\n", " ")


def truncated(name: str) -> DecodeError:
    return DecodeError(name, "truncated", "file is truncated (incomplete download or copy?)")
