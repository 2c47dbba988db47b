"""A dry run of a recipe on synthetic images, for ``augkit recipe check``.

The third of the checks that go beyond building (:mod:`augkit.recipes.checks` holds the
first two, which every load runs): :func:`probe` runs each transform alone, at p=1, and
then the whole recipe, on a :data:`PROBE_SIDE` px synthetic image (larger where a crop
needs it, up to :data:`MAX_PROBE_SIDE`) for :data:`PROBE_SEEDS`, naming the line of what
fails. ``recipe check`` runs it in a child process (:func:`probe_isolated`) with a time and
memory limit, so that a transform that would take minutes or crash the process is reported
as such instead.

Apart from the load-time checks because it runs a loaded recipe: it imports
:mod:`augkit.recipes`, which imports the checks, and the checks import nothing back.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from augkit.recipes.checks import describe_exception, leaf_need, size_needs

if TYPE_CHECKING:
    from augkit.recipes import Recipe
    from augkit.recipes.build import Step

PROBE_SIDE = 256
MAX_PROBE_SIDE = 4096
PROBE_SEEDS = (0, 1, 2)
PROBE_TIMEOUT_S = 60.0
PROBE_MEMORY_BYTES = 8 << 30  # address space the child may add to what its imports took


def probe_image(side: int) -> np.ndarray:
    """A side x side uint8 RGB image with what photos have: gradients, edges, noise."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32)
    base = 60 + 120 * (x / side) + 40 * np.sin(y / 7.0)
    image = np.stack([base + 30 * (y / side), 0.8 * base + 20 * np.cos(x / 11.0),
                      0.5 * base + 60 * ((x // 16 + y // 16) % 2)], axis=-1)
    return np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)


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
        need = leaf_need(transform)
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
    command = [sys.executable, "-m", "augkit.recipes.probe", os.fspath(path)]
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
    """``python -m augkit.recipes.probe RECIPE``: probe it, one JSON object a line."""
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
