"""Beyond building: arguments that build but fail at run time, the image size a recipe
needs, and a dry run on synthetic images for ``augkit recipe check``.

albumentations validates each argument's type and range, not whether the transform can
run. Three layers catch the rest:

1. :func:`number_problems` and :func:`argument_problems`, at load time, for every
   command: a value no image can
   satisfy (``SomeOf n: -1``, ``RandomScale`` down to 0x, a number that is not finite or
   past OpenCV's 32-bit integers) or one that makes every image cost seconds or crash
   OpenCV (a blur kernel over :data:`MAX_KERNEL` pixels).
2. :func:`size_needs`: the crops that need images of some size (``RandomCrop`` larger
   than the images fails on each); ``recipe check`` prints them, and the commands, which
   know their images, record a too-small one as a failed sample.
3. :func:`probe`: each transform alone, at p=1, and then the whole recipe, on a
   :data:`PROBE_SIDE` px synthetic image (larger where a crop needs it, up to
   :data:`MAX_PROBE_SIDE`) for :data:`PROBE_SEEDS`, naming the line of what fails.
   ``recipe check`` runs it in a child process (:func:`probe_isolated`) with a time and
   memory limit, so that a transform that would take minutes or crash the process is
   reported as such instead.
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from augkit.recipes.build import Step
    from augkit.recipes import Recipe

MAX_KERNEL = 255  # px: OpenCV's median filter stops near it; a box or Gaussian filter past it takes seconds
INT_LIMIT = 2**31 - 1  # OpenCV takes sizes and counts as 32-bit integers
PROBE_SIDE = 256
MAX_PROBE_SIDE = 4096
PROBE_SEEDS = (0, 1, 2)
PROBE_TIMEOUT_S = 60.0
PROBE_MEMORY_BYTES = 8 << 30  # address space the child may add to what its imports took


# --- 1. arguments that build but cannot run ------------------------------------------------


def _numbers_in(value: Any) -> Iterator[float | int]:
    """Every number inside an argument's value, however nested (booleans are not numbers).
    Not :func:`augkit.core.words.numbers`, which reads a fixed count from text a person typed."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _numbers_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _numbers_in(item)


def number_problems(args: dict[str, Any]) -> list[tuple[str, str]]:
    """(argument, message) for each argument holding a number no transform can use: not
    finite, or past OpenCV's 32-bit integers. Checked before building."""
    problems: list[tuple[str, str]] = []
    for key, value in args.items():
        for number in _numbers_in(value):
            if isinstance(number, float) and not math.isfinite(number):
                problems.append((key, f"{key}: {number} is not a finite number"))
                break
            if abs(number) > INT_LIMIT:
                problems.append((key, f"{key}: {number:g} is past what OpenCV takes (2^31 - 1)"))
                break
    return problems


def composition_problems(args: dict[str, Any]) -> list[tuple[str, str]]:
    """(argument, message) for a composition's own arguments, which albumentations does
    not validate: ``OneOf(p="x")`` builds and fails on the first image."""
    problems: list[tuple[str, str]] = []
    p = args.get("p", 1)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        problems.append(("p", f"p: must be a number from 0 to 1 (got {p!r:.40})"))
    n = args.get("n", 1)
    if isinstance(n, bool) or not isinstance(n, int):
        problems.append(("n", f"n: must be a whole number (got {n!r:.40})"))
    if not isinstance(args.get("replace", False), bool):
        problems.append(("replace", f"replace: must be true or false (got {args['replace']!r:.40})"))
    return problems


def argument_problems(step: Step, transform: Any) -> list[tuple[str | None, str]]:
    """(argument or None, message) for each value of a built transform that no image can
    run with, or that would cost seconds per image or crash OpenCV."""
    problems: list[tuple[str | None, str]] = []
    kind = type(transform).__name__
    if "blur_limit" in step.args and hasattr(transform, "blur_limit"):
        largest = max(_numbers_in(transform.blur_limit), default=0)
        if largest > MAX_KERNEL:
            problems.append(("blur_limit", f"blur_limit: a {largest:g} px kernel is past {MAX_KERNEL} px (larger "
                                           f"kernels take seconds per image, or crash OpenCV's median filter)"))
    if kind in ("SomeOf", "RandomOrder") and transform.n < 1:
        problems.append(("n", f"n: {transform.n} transforms cannot be applied; n is how many of the "
                              f"{len(transform.transforms)} to apply, at least 1"))
    if kind == "RandomScale" and 1 + min(transform.scale_limit) <= 0:  # the factor is 1 + a limit
        lowest = min(transform.scale_limit)
        problems.append(("scale_limit", f"scale_limit: the factor reaches 1 + ({lowest:g}) = {1 + lowest:g}x, an "
                                        f"empty image; keep the limits above -1"))
    if kind == "Downscale" and min(transform.scale_range) <= 0:
        problems.append(("scale_range", "scale_range: a scale of 0 makes an empty image; keep it above 0"))
    return problems


# --- 2. the image size a recipe needs --------------------------------------------------------


@dataclass(frozen=True)
class SizeNeed:
    """A step that fails on images smaller than ``height`` x ``width`` where it runs."""

    height: int
    width: int
    name: str
    line: int | None
    after_resize: bool  # a step before it changes the size: the need is not the input's

    def describe(self) -> str:
        where = " where it runs (after the resizing before it)" if self.after_resize else ""
        at = f" at line {self.line}" if self.line else ""
        return f"needs images at least {self.width} wide and {self.height} high{where} ({self.name}{at})"


@dataclass(frozen=True)
class _Bound:
    """What is known of the image size before a step: at least ``height`` x ``width``, and
    whether it is still the input's size."""

    height: int = 0
    width: int = 0
    resized: bool = False

    def meet(self, other: _Bound) -> _Bound:
        return _Bound(min(self.height, other.height), min(self.width, other.width), self.resized or other.resized)


_UNKNOWN = _Bound(0, 0, True)
# DualTransforms that keep the size (an ImageOnlyTransform always does), some when an
# argument says so.
_KEEP_SIZE = {
    "HorizontalFlip", "VerticalFlip", "ShiftScaleRotate", "SafeRotate", "ElasticTransform", "GridDistortion",
    "OpticalDistortion", "PiecewiseAffine", "ThinPlateSpline", "GridElasticDeform", "CoarseDropout", "GridDropout",
    "XYMasking", "Erasing", "FrequencyMasking", "TimeMasking", "TimeReverse", "PixelDropout", "RandomGridShuffle",
    "Morphological", "NoOp",
}
_KEEP_SIZE_UNLESS = {"Affine": ("fit_output", True), "Perspective": ("keep_size", False),
                     "Rotate": ("crop_border", True), "CropAndPad": ("keep_size", False)}


def _leaf_need(transform: Any) -> tuple[int, int] | None:
    """(height, width) a crop needs of its input, or None."""
    kind = type(transform).__name__
    if kind in ("RandomCrop", "CenterCrop") and not transform.pad_if_needed:
        return int(transform.height), int(transform.width)
    if kind == "Crop" and not transform.pad_if_needed:
        return int(transform.y_max), int(transform.x_max)
    if kind == "RandomSizedCrop":
        tallest = int(max(transform.min_max_height))
        return tallest, int(tallest * transform.w2h_ratio)
    return None


def _leaf_after(transform: Any, bound: _Bound) -> _Bound:
    from albumentations.core.transforms_interface import ImageOnlyTransform

    kind = type(transform).__name__
    if isinstance(transform, ImageOnlyTransform) or kind in _KEEP_SIZE:
        return bound
    if kind in _KEEP_SIZE_UNLESS:
        attribute, changes = _KEEP_SIZE_UNLESS[kind]
        return _UNKNOWN if getattr(transform, attribute) == changes else bound
    if kind in ("RandomCrop", "CenterCrop", "Resize"):
        return _Bound(int(transform.height), int(transform.width), True)
    if kind == "Crop":
        return _Bound(int(transform.y_max - transform.y_min), int(transform.x_max - transform.x_min), True)
    if kind in ("RandomResizedCrop", "RandomSizedCrop"):
        return _Bound(int(transform.size[0]), int(transform.size[1]), True)
    if kind == "SmallestMaxSize" and transform.max_size is not None:
        side = int(min(_numbers_in(transform.max_size)))
        return _Bound(side, side, True)
    if kind == "PadIfNeeded":
        return _Bound(max(bound.height, transform.min_height or 0), max(bound.width, transform.min_width or 0), True)
    return _UNKNOWN


def _walk_sizes(step: Step, transform: Any, bound: _Bound, needs: list[SizeNeed]) -> _Bound:
    kind = type(transform).__name__
    if step.children is None:
        need = _leaf_need(transform)
        if need and (not bound.resized or bound.height < need[0] or bound.width < need[1]):
            needs.append(SizeNeed(need[0], need[1], step.name, step.line, bound.resized))
        return _leaf_after(transform, bound)
    pairs = list(zip(step.children, transform.transforms, strict=True))
    if kind == "Sequential":
        after = bound
        for child, child_transform in pairs:
            after = _walk_sizes(child, child_transform, after, needs)
        return after if transform.p >= 1 else after.meet(bound)
    results = [_walk_sizes(child, child_transform, bound, needs) for child, child_transform in pairs]
    if kind == "OneOf":
        after = results[0]
        for result in results[1:]:
            after = after.meet(result)
        return after if transform.p >= 1 else after.meet(bound)
    return bound if all(r == bound for r in results) else _UNKNOWN  # SomeOf, RandomOrder: any order


def size_needs(steps: list[Step], transforms: list) -> list[SizeNeed]:
    """The crops that need images of some size where they run, in recipe order."""
    needs: list[SizeNeed] = []
    bound = _Bound()
    for step, transform in zip(steps, transforms, strict=True):
        bound = _walk_sizes(step, transform, bound, needs)
    return needs


# --- 3. a dry run -------------------------------------------------------------------------------


def probe_image(side: int) -> np.ndarray:
    """A side x side uint8 RGB image with what photos have: gradients, edges, noise."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32)
    base = 60 + 120 * (x / side) + 40 * np.sin(y / 7.0)
    image = np.stack([base + 30 * (y / side), 0.8 * base + 20 * np.cos(x / 11.0),
                      0.5 * base + 60 * ((x // 16 + y // 16) % 2)], axis=-1)
    return np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)


def describe_exception(exc: BaseException) -> str:
    """One line: the exception's type and message, OpenCV's source location left out."""
    text = " ".join(str(exc).split())
    if "error: (" in text and text.startswith("OpenCV"):
        text = text[text.index("error: (") + len("error: "):]  # "(-215:Assertion failed) ksize > 0 in ..."
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def leaves(steps: list[Step], transforms: list) -> Iterator[tuple[Step, Any]]:
    """Every transform that is not a composition, with its step, in recipe order."""
    for step, transform in zip(steps, transforms, strict=True):
        if step.children is None:
            yield step, transform
        else:
            yield from leaves(step.children, transform.transforms)


@dataclass
class ProbeReport:
    """What a dry run found: (line, message) problems, and notes on what it left out."""

    problems: list[tuple[int | None, str]]
    notes: list[str]
    side: int  # of the image the whole recipe ran on
    ran: bool = True  # False: the child process never got to the transforms


def _side_for(height: int, width: int) -> int:
    return max(PROBE_SIDE, height, width)


def probe(recipe: Recipe, emit: Callable[[dict], None] | None = None) -> ProbeReport:
    """Run each transform alone (p=1) and then the whole recipe on synthetic images, for
    PROBE_SEEDS; a transform that raises is a problem at its line. In this process: see
    :func:`probe_isolated` for a run that a hang or crash cannot take down. ``emit`` gets
    ``{"trying": [name, line]}`` before each run and each problem and note as found."""
    from augkit.core._albu import albumentations
    from augkit.core.seeds import seed_pipeline

    A = albumentations()
    report = ProbeReport([], [], PROBE_SIDE)
    say = emit or (lambda message: None)

    def problem(line: int | None, message: str) -> None:
        report.problems.append((line, message))
        say({"problem": [line, message]})

    def note(message: str) -> None:
        report.notes.append(message)
        say({"note": message})

    failed: set[int] = set()
    for step, transform in leaves(recipe.steps, recipe._transforms):
        if type(transform).__name__ == "FromFloat":
            continue  # takes ToFloat's output, not an image: tried with the whole recipe below
        need = _leaf_need(transform)
        side = _side_for(*need) if need else PROBE_SIDE
        if side > MAX_PROBE_SIDE:
            note(f"{step.name}{_at(step.line)} not tried: it needs images larger than {MAX_PROBE_SIDE} px")
            continue
        alone = copy.deepcopy(transform)
        alone.p = 1.0
        compose = A.Compose([alone], strict=True)
        say({"trying": [step.name, step.line]})
        try:
            for seed in PROBE_SEEDS:
                seed_pipeline(compose, seed)
                compose(image=probe_image(side))
        except Exception as exc:  # noqa: BLE001 - any failure is what we are looking for
            problem(step.line, f"{step.name}: fails on a {side}x{side} image: {describe_exception(exc)}")
            failed.add(id(transform))
    needs = [n for n in size_needs(recipe.steps, recipe._transforms) if not n.after_resize]
    side = _side_for(max((n.height for n in needs), default=0), max((n.width for n in needs), default=0))
    report.side = side
    if side > MAX_PROBE_SIDE:
        note(f"the whole recipe not tried: it needs images larger than {MAX_PROBE_SIDE} px")
        return report
    image = probe_image(side)
    say({"trying": ["the recipe", None]})
    for seed in PROBE_SEEDS:
        try:
            recipe(image, seed=seed)
        except Exception as exc:  # noqa: BLE001
            cause = getattr(exc, "step", None)
            if cause is not None and id(getattr(exc, "transform", None)) in failed:
                break  # already reported alone
            name, line = (cause.name, cause.line) if cause is not None else ("the recipe", None)
            problem(line, f"{name}: fails in the recipe on a {side}x{side} image (seed {seed}): "
                          f"{describe_exception(exc.__cause__ or exc)}")
            break
    return report


def _at(line: int | None) -> str:
    return f" at line {line}" if line else ""


def probe_isolated(path: str, timeout: float = PROBE_TIMEOUT_S) -> ProbeReport:
    """:func:`probe` of the recipe file ``path`` in a child process, limited to ``timeout``
    seconds and PROBE_MEMORY_BYTES more memory: a transform that takes longer, or that
    crashes the process, is a problem at the line the child was trying."""
    command = [sys.executable, "-m", "augkit.recipes.checks", os.fspath(path)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,  # noqa: S603
                             env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})
    try:
        output, errors = child.communicate(timeout=timeout)
        ended = f"ended with exit code {child.returncode}"
        if child.returncode < 0:
            ended = f"crashed (signal {-child.returncode})"
    except subprocess.TimeoutExpired:
        child.kill()
        output, errors = child.communicate()
        ended = f"did not finish within {timeout:g} s"
    problems: list[tuple[int | None, str]] = []
    notes: list[str] = []
    side, trying, done = PROBE_SIDE, None, False
    for text in output.splitlines():
        try:
            message = json.loads(text)
        except ValueError:
            continue
        if "trying" in message:
            trying = message["trying"]
        elif "problem" in message:
            problems.append(tuple(message["problem"]))
        elif "note" in message:
            notes.append(message["note"])
        elif "done" in message:
            side, done = message["done"], True
    if not done:
        if trying:
            name, line = trying
            problems.append((line, f"{name}: the dry run {ended} while trying it on a synthetic image "
                                   f"(a value that makes it too slow or too large?)"))
        else:  # not the recipe's doing: the child could not start, or not in time
            last = (errors or "").strip().splitlines()[-1:] or [""]
            notes.append(f"not run: the child process {ended} before trying a transform" +
                         (f" ({last[0][:200]})" if last[0] else ""))
    return ProbeReport(problems, notes, side, ran=done or trying is not None)


def _child(path: str) -> None:
    """``python -m augkit.recipes.checks RECIPE``: probe it, one JSON object a line."""
    from augkit.core._albu import defer_torch_bridge

    defer_torch_bridge()
    from augkit.recipes import load_recipe

    recipe = load_recipe(path)
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = used + PROBE_MEMORY_BYTES
        if hard == resource.RLIM_INFINITY or limit < hard:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, OSError, ValueError):  # not Linux: no limit but the time
        pass

    report = probe(recipe, emit=lambda message: print(json.dumps(message), flush=True))
    print(json.dumps({"done": report.side}), flush=True)


if __name__ == "__main__":
    _child(sys.argv[1])
