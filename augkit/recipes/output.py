"""What a recipe returns: uint8 RGB, or what a step makes of it.

Every augkit command takes uint8 RGB images (HxWx3). A recipe that may return anything
else (``Normalize``, ``ToFloat`` without ``FromFloat``, one-channel ``ToGray``, in any
branch that may fire) is found here from its steps, without running it:
:meth:`augkit.recipes.Recipe.require_image_output` refuses it for a command.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from augkit.recipes.build import Step


@dataclass(frozen=True)
class Output:
    """What a pipeline may return at some point: dtype and channels, and when that is not
    uint8 RGB, the step that made it so (the first one: later steps only carry it on)."""

    dtype: str = "uint8"
    channels: int = 3
    name: str = ""  # the step that stopped it being uint8 RGB
    line: int | None = None
    problem: str = ""  # "makes float32 images"
    fix: str | None = None  # the step's own fix; None: the consumer's (normalise elsewhere)

    @property
    def is_image(self) -> bool:
        return self.dtype == "uint8" and self.channels == 3

    @property
    def label(self) -> str:
        return self.dtype if self.channels == 3 else f"{self.dtype} with {self.channels} channel(s)"


def at_line(line: int | None) -> str:
    return f" at line {line}" if line else ""


def _leaf_output(step: Step, transform: Any, before: Output) -> Output:
    """What one transform makes of ``before``. Of albumentations 2.0.8's transforms, only
    these change the dtype or channels of a uint8 RGB image (each registered transform that
    builds on its defaults was run on one to check); a Lambda is left to require_image."""
    kind = type(transform).__name__
    dtype, channels = before.dtype, before.channels
    if kind in ("Normalize", "ToFloat"):
        dtype, problem, fix = "float32", "makes float32 images", None
    elif kind == "FromFloat" and before.dtype.startswith("float"):
        dtype = str(transform.dtype)
        problem, fix = f"makes {dtype} images", "set dtype: uint8"
    elif kind == "FromFloat":  # multiplies 0-255 values by 255: not an image any more
        dtype = "float"
        problem = "turns uint8 images into float ones (it expects ToFloat's output)"
        fix = "drop it, or put ToFloat before it"
    elif kind in ("ToGray", "ToRGB"):
        channels = int(transform.num_output_channels)
        problem, fix = f"makes {channels}-channel images", "set num_output_channels: 3"
    else:
        return before
    after = Output(dtype, channels)
    if after.is_image:
        return after  # FromFloat after ToFloat: an image again
    # The first step to go wrong stays the cause, unless this one now decides alone what
    # was wrong (FromFloat picks the dtype of a float RGB image).
    decides = kind == "FromFloat" and before.dtype.startswith("float") and before.channels == 3
    if not before.is_image and not decides:
        return replace(before, dtype=dtype, channels=channels)
    return Output(dtype, channels, kind, step.line, problem, fix)


def sequence_outputs(steps: list[Step], transforms: list, before: frozenset[Output]) -> frozenset[Output]:
    for step, transform in zip(steps, transforms, strict=True):
        before = _step_outputs(step, transform, before)
    return before


def _step_outputs(step: Step, transform: Any, before: frozenset[Output], forced: bool = False) -> frozenset[Output]:
    """Every output the step may give for the possible inputs ``before``: a transform or
    branch that may fire counts as firing, and as not firing when its p is below 1."""
    kind = type(transform).__name__
    p = getattr(transform, "p", 1.0)
    if p <= 0 and not forced:
        return before
    if step.children is None:
        fired = frozenset(_leaf_output(step, transform, o) for o in before)
    elif kind == "OneOf":  # runs one child, chosen with weight p, whatever its p
        children = [(c, t) for c, t in zip(step.children, transform.transforms, strict=True) if t.p > 0]
        fired = frozenset().union(*(_step_outputs(c, t, before, forced=True) for c, t in children)) or before
    elif kind in ("SomeOf", "RandomOrder"):  # any of them, in any order: grow to a fixed point
        fired = before
        while True:
            grown = fired.union(*(_step_outputs(c, t, fired) for c, t in zip(step.children, transform.transforms,
                                                                             strict=True)))
            if grown == fired:
                break
            fired = grown
        forced = False  # SomeOf draws against its own p even when a OneOf chose it
    else:  # Sequential
        fired = sequence_outputs(step.children, transform.transforms, before)
    return fired if forced or p >= 1 else before | fired
