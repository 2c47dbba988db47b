"""Decoding at the size a consumer needs: the rule that picks a JPEG's DCT scale.

A 12-megapixel photo whose first step is "shorter side to 256" has 97 % of its pixels
thrown away by that resize. libjpeg can decode a JPEG straight at 1/2, 1/4 or 1/8 of its
size (it runs a smaller inverse DCT per 8x8 block: each output pixel is the average of
the block's pixels it stands for, not a sample of them), which skips most of the work
after the entropy decoder. A consumer whose first step is a deterministic shrink says
what it needs with a :class:`SizeHint`; :func:`reduction` picks the smallest scale that
still gives it, and the consumer's own resize does the rest of the way.

The rule, which tests pin:

* **Never below the target.** The image at 1/d must still meet every minimum of the
  hint, in the image's *displayed* orientation: the caller turns the stored size round
  for EXIF orientations 5-8 first.
* **Nothing moves.** A scale is used only where it divides both sides, so that every
  reduced pixel stands for exactly d x d pixels of the image and the consumer's resize
  frames the same picture. Elsewhere libjpeg rounds the reduced size up, its last row
  and column stand for less, and a resize of it shifts the picture by up to a third of
  an output pixel: measured on real photos, that moved the output by several grey levels
  where the finer filter alone changes it by about one (benchmarks/RESULTS.md). Camera
  and phone photos have sides that 8 divides (4000x3000, 4032x3024, 6000x4000, ...).
* **Never another shape.** Where the consumer's output size depends on its input's (a
  resize that keeps the aspect ratio rounds the other side), the hint carries that rule
  (``shapes``) and a scale is used only where it gives the same output size as the full
  image: only pixel values change, within the difference ``benchmarks/RESULTS.md``
  records ("Decoding at the size the recipe needs").
* **Only 1/2, 1/4 and 1/8.** libjpeg-turbo also scales by 3/8, 5/8, 3/4 and 7/8, but
  measured on a 12-megapixel photo those are slower than the next power of two (3/8
  slower than 1/2; 5/8 to 7/8 slower than the full decode): no SIMD code for them.

Whether a consumer may use a hint at all (a recipe may turn it off with
``reduced_decode: false``, the library with ``reduced_decode=False``) is the consumer's
business; the decoder only applies the hint it is given (:func:`augkit.input.decoding.decode_bytes`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

SCALES = (8, 4, 2)  # denominators, the smallest output first
# (h, w) of an input -> (h, w) of what the consumer makes of it
ShapeRule = Callable[[int, int], tuple[int, int]]


@dataclass(frozen=True)
class SizeHint:
    """The least a consumer needs of a decoded image, in its displayed orientation: at
    least ``height`` rows and ``width`` columns, a shorter side of at least ``shorter`` and
    a longer one of at least ``longer`` (0: no need). ``shapes``: the consumer's output
    size as a function of its input's, for each way it may resize; a reduced image must
    give the same output size as the full one under every rule (picklable functions, as
    a hint travels to worker processes)."""

    height: int = 0
    width: int = 0
    shorter: int = 0
    longer: int = 0
    shapes: tuple[ShapeRule, ...] = ()

    def met_by(self, height: int, width: int) -> bool:
        """Whether an image of ``height`` x ``width`` gives the consumer all it needs."""
        return (height >= self.height and width >= self.width
                and min(height, width) >= self.shorter and max(height, width) >= self.longer)

    def __and__(self, other: SizeHint) -> SizeHint:
        """The hint of two consumers of one decoded image: what both need."""
        return SizeHint(max(self.height, other.height), max(self.width, other.width),
                        max(self.shorter, other.shorter), max(self.longer, other.longer),
                        self.shapes + tuple(rule for rule in other.shapes if rule not in self.shapes))


def reduced_size(height: int, width: int, scale: int) -> tuple[int, int]:
    """The size libjpeg decodes a ``height`` x ``width`` image to at 1/``scale`` (rounded up)."""
    return -(-height // scale), -(-width // scale)


def reduction(height: int, width: int, hint: SizeHint | None) -> int:
    """The largest of 8, 4, 2 that divides both sides and whose scale, 1/d, still gives
    ``hint`` all it needs from an image displayed ``height`` x ``width``; 1 (the full
    size) when none does or there is no hint."""
    if hint is None:
        return 1
    full = [rule(height, width) for rule in hint.shapes]
    for scale in SCALES:
        if height % scale or width % scale:
            continue
        h, w = height // scale, width // scale
        if hint.met_by(h, w) and all(rule(h, w) == shape for rule, shape in zip(hint.shapes, full)):
            return scale
    return 1


def displayed(height: int, width: int, orientation: int) -> tuple[int, int]:
    """The stored ``height`` x ``width`` as shown: EXIF orientations 5-8 turn it a quarter."""
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)
