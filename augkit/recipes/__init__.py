"""Recipes: a YAML (or albumentations JSON) file that declares an augmentation pipeline.

    seed: 42                      # optional default seed
    reduced_decode: true          # optional (the default); false: decode every image whole
    fuse_geometry: false          # optional (the default); true: one warp per run of geometric steps
    transforms:
      - HorizontalFlip: {p: 0.5}
      - RandomCrop: {height: 224, width: 224}
      - OneOf:
          p: 0.3
          transforms:
            - Blur: {blur_limit: 3}
            - CLAHE                 # a bare name takes every default

Loading a recipe builds every transform, so a recipe that loads is a recipe that runs
exactly as written: an unknown name, an unknown or 1.x-era argument, a wrong type or an
out-of-range value is a :class:`RecipeError` naming the file, the line, the key and the
fix, one line per problem, every problem at once (:mod:`augkit.recipes.build`). Warnings
albumentations would only print become errors too, and so do values that build but
cannot run (:mod:`augkit.recipes.checks`). The file itself is read within limits
(:mod:`augkit.recipes.source`).

A file saved by albumentations' own ``A.save`` (JSON or YAML) loads the same way, and
:meth:`Recipe.to_albumentations` writes that format back.

Every augkit command takes what a recipe returns as a uint8 RGB image (HxWx3). A recipe
that can return anything else (``Normalize``, ``ToFloat`` without ``FromFloat``, one-channel
``ToGray``, in any branch that may fire) still runs from Python, ``recipe(image)``, but
:meth:`Recipe.require_image_output` refuses it for a command, naming the step and the fix
(:mod:`augkit.recipes.output`); :func:`require_image` catches at run time what no step
declares (a ``Lambda``). A transform that fails on an image raises :class:`TransformError`,
which names the step and its line.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from augkit.recipes import transforms as registry_mod
from augkit.core.errors import RecipeError
from augkit.core.files import write_text_atomic
from augkit.core.words import close_matches
from augkit.recipes.build import (  # noqa: F401 - the limits are part of this module's promise
    MAX_COMPOSITION_DEPTH,
    MAX_TRANSFORMS,
    Step,
    Where,
    build,
    drop_serialized_extras,
    from_albumentations,
    parse_steps,
    short,
)
from augkit.recipes.checks import describe_exception, size_needs
from augkit.recipes.output import Output, at_line, sequence_outputs
from augkit.recipes.source import (
    MAX_RECIPE_BYTES,
    FileRefused,
    YAMLProblem,
    check_data_bounds,
    line_of,
    parse_yaml,
    read_regular_file,
)
from augkit.core.seeds import seed_pipeline
from augkit.recipes.augmenter import ImageAugmenter, NotAnImageError, require_image  # noqa: F401 - public here

TOP_LEVEL_KEYS = ("seed", "transforms", "name", "description", "reduced_decode", "fuse_geometry")

# --- the recipe ----------------------------------------------------------------------------


class Recipe:
    """A validated pipeline. ``recipe(image, seed=s)`` returns the augmented RGB uint8 array.

    ``recipe.compose`` is the underlying ``albumentations.Compose`` for users who want it.
    Calling a recipe re-seeds that Compose, so one Recipe must not be called from two
    threads at once (worker processes each have their own copy).

    ``reduced_decode`` (the recipe's ``reduced_decode:``, default true): the commands may
    decode a JPEG at 1/2, 1/4 or 1/8 of its size when the first step shrinks it at least
    that much (:mod:`augkit.recipes.size_hint`); false decodes every image whole.
    ``fuse_geometry`` (default false): each run of geometric steps is made with one warp
    (:mod:`augkit.recipes.fusion`): the same draws, one resampling instead of several.
    """

    def __init__(self, steps: list[Step], *, seed: int | None = None, source: str = "<recipe>",
                 from_file: bool = False, _where: Where | None = None, reduced_decode: bool = True,
                 fuse_geometry: bool = False):
        self.steps = steps
        self.seed = seed
        self.reduced_decode = reduced_decode
        self.fuse_geometry = fuse_geometry
        self.source = source
        self.from_file = from_file  # relative paths in it are the file's; it cannot hold a Lambda
        where = _where or Where(source, from_file)
        self._transforms = [build(step, where) for step in steps]
        where.raise_problems()

    @functools.cached_property
    def compose(self):
        return self._make_compose(save_applied_params=False)

    @functools.cached_property
    def _tracing_compose(self):
        return self._make_compose(save_applied_params=True, fuse=self.fuse_geometry)

    @functools.cached_property
    def _running_compose(self):
        """What ``recipe(image)`` runs: ``compose``, or its fused twin with ``fuse_geometry``."""
        return self._make_compose(False, fuse=True) if self.fuse_geometry else self.compose

    def _make_compose(self, save_applied_params: bool, fuse: bool = False, start: int = 0):
        """A Compose of the transforms from ``start`` on, each geometric run one warp with ``fuse``."""
        from augkit.core._albu import albumentations

        A = albumentations()
        transforms = self._transforms[start:]
        if fuse:
            from augkit.recipes.fusion import fuse_runs  # imports albumentations: only for a recipe that fuses

            transforms = fuse_runs(self._transforms, start)
        compose = A.Compose(transforms, strict=True, save_applied_params=save_applied_params)
        if self.seed is not None:
            seed_pipeline(compose, self.seed)
        return compose

    # Pickled as its parsed steps and rebuilt on arrival, so a Recipe can be shipped to
    # worker processes without relying on albumentations objects pickling faithfully.
    def __getstate__(self) -> dict[str, Any]:
        return {"steps": self.steps, "seed": self.seed, "source": self.source, "from_file": self.from_file,
                "reduced_decode": self.reduced_decode, "fuse_geometry": self.fuse_geometry}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["steps"], seed=state["seed"], source=state["source"],
                      from_file=state.get("from_file", False), reduced_decode=state.get("reduced_decode", True),
                      fuse_geometry=state.get("fuse_geometry", False))

    def __call__(self, image, seed: int | None = None):
        compose = self._running_compose
        if seed is not None:
            seed_pipeline(compose, seed)
        try:
            return compose(image=image)["image"]
        except Exception as exc:  # noqa: BLE001 - named after the step that raised it
            raise self._transform_error(exc) from exc

    def trace(self, image, seed: int | None = None):
        """(augmented image, [(transform name, drawn params), ...] for the transforms that fired)."""
        compose = self._tracing_compose
        if seed is not None:
            seed_pipeline(compose, seed)
        try:
            result = compose(image=image)
        except Exception as exc:  # noqa: BLE001
            raise self._transform_error(exc) from exc
        return result["image"], list(result.get("applied_transforms", []))

    def names(self) -> set[str]:
        """Every transform and composition name the recipe uses, at any depth."""
        return {step.name for step, _ in self._steps_by_transform.values()}

    @functools.cached_property
    def _steps_by_transform(self) -> dict[int, tuple[Step, Any]]:
        found: dict[int, tuple[Step, Any]] = {}

        def walk(steps: list[Step], transforms: list) -> None:
            for step, transform in zip(steps, transforms, strict=True):
                found[id(transform)] = (step, transform)
                if step.children is not None:
                    walk(step.children, transform.transforms)

        walk(self.steps, self._transforms)
        return found

    def _transform_error(self, exc: Exception) -> TransformError:
        """``exc`` named after the innermost of this recipe's transforms it came through."""
        if isinstance(exc, TransformError):
            return exc
        step = transform = None
        tb = exc.__traceback__
        while tb is not None:
            found = self._steps_by_transform.get(id(tb.tb_frame.f_locals.get("self")))
            if found is not None:
                step, transform = found
            tb = tb.tb_next
        name = f"{step.name}{at_line(step.line)}" if step is not None else "the recipe"
        return TransformError(f"{name}: {describe_exception(exc)}", step, transform)

    def for_image(self, image) -> ImageAugmenter:
        """``augment = recipe.for_image(image)``; ``augment(seed)`` equals ``recipe(image,
        seed=seed)``, for many seeds at less cost: see :class:`ImageAugmenter`."""
        return ImageAugmenter(self, image)

    @functools.cached_property
    def _always_applied(self) -> list:
        """The leading transforms that always apply: those an :class:`ImageAugmenter` may
        run once per image (it checks that they draw no random number). With
        ``fuse_geometry`` the head ends where the first fused run starts: that run warps
        from the image itself, as ``recipe(image)`` does."""
        head = []
        transforms = self._transforms
        if self.fuse_geometry:
            from augkit.recipes.fusion import first_run

            transforms = transforms[:first_run(transforms)]
        for transform in transforms:
            if not hasattr(transform, "should_apply") or transform.p < 1:  # a composition, or may skip
                break
            head.append(transform)
        return head

    @functools.cached_property
    def _tails(self) -> dict[int, Any]:
        return {}

    def _tail(self, start: int):
        """A Compose of the transforms from ``start`` on (made once per start used)."""
        if start not in self._tails:
            self._tails[start] = self._make_compose(False, fuse=self.fuse_geometry, start=start)
        return self._tails[start]

    def to_albumentations(self) -> dict[str, Any]:
        """The pipeline in albumentations' ``A.to_dict`` format (what ``A.save`` writes)."""
        from augkit.core._albu import albumentations

        data = albumentations().to_dict(self.compose)
        for node in data["transform"]["transforms"]:
            drop_serialized_extras(node)
        if self.seed is not None:
            data["seed"] = self.seed  # A.to_dict does not keep it; augkit reads it back
        if not self.reduced_decode:
            data["reduced_decode"] = False
        if self.fuse_geometry:
            data["fuse_geometry"] = True  # it changes pixels: part of the fingerprint
        return data

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 of the resolved pipeline (every argument, defaults included), not of the
        file's text: comments and formatting do not change it, any real change does."""
        data = self.to_albumentations()
        data.pop("seed", None)
        data.pop("reduced_decode", None)  # how images are decoded: runs record it as "decode"
        data.pop("__version__", None)
        text = json.dumps(data, sort_keys=True, default=repr)
        return hashlib.sha256(text.encode()).hexdigest()

    def describe(self) -> str:
        """The resolved pipeline, one transform per line, nested by indentation."""
        lines = [f"{self.source}: seed {self.seed if self.seed is not None else '(none)'}"]

        def walk(node: dict[str, Any], depth: int) -> None:
            name = node["__class_fullname__"].rsplit(".", 1)[-1]
            args = ", ".join(f"{k}={v!r}" for k, v in node.items() if k not in ("__class_fullname__", "transforms"))
            lines.append(f"{'  ' * depth}{name}({args})")
            for child in node.get("transforms", []):
                walk(child, depth + 1)

        for node in self.to_albumentations()["transform"]["transforms"]:
            walk(node, 1)
        return "\n".join(lines)

    @functools.cached_property
    def _outputs(self) -> frozenset[Output]:
        return sequence_outputs(self.steps, self._transforms, frozenset({Output()}))

    @property
    def _not_an_image(self) -> Output | None:
        """The earliest step whose output a command cannot use, if any may reach the end."""
        bad = [o for o in self._outputs if not o.is_image]
        return min(bad, key=lambda o: (o.line or 0, o.name)) if bad else None

    def describe_input(self) -> list[str]:
        """What size of image the recipe needs, for ``augkit recipe check``: ``any size``, or
        one line per crop that fails on images smaller than it (commands that meet such an
        image record a failed sample)."""
        needs = size_needs(self.steps, self._transforms)
        return [need.describe() for need in needs] or ["any size"]

    def describe_output(self) -> str:
        """What the recipe returns, for ``augkit recipe check``: ``uint8 RGB``, or what a
        step makes of it and that the commands cannot use it."""
        bad = self._not_an_image
        if bad is None:
            return "uint8 RGB"
        when = " (when it fires)" if any(o.is_image for o in self._outputs) else ""
        return (f"{bad.label} after {bad.name}{at_line(bad.line)}{when}: usable only from Python (recipe(image)), "
                f"not by augkit's commands")

    def require_image_output(self, fix: str) -> None:
        """Raise :class:`RecipeError` unless every run of the recipe returns a uint8 RGB image.

        What augkit's commands and ``flow`` call before using a recipe. ``fix`` is the
        consumer's advice for a step that changes the value range (``Normalize``,
        ``ToFloat``), with ``{name}`` for the step; a step with a fix of its own (one-channel
        ``ToGray``) says that instead."""
        bad = self._not_an_image
        if bad is None:
            return
        advice = bad.fix or fix.format(name=bad.name)
        raise Where(self.source).error(bad.line, f"{bad.name} {bad.problem}, but augkit's commands take uint8 RGB "
                                                  f"images; {advice}")

    def __repr__(self) -> str:
        return f"Recipe({self.source!r}, {len(self.steps)} steps, seed={self.seed})"


class TransformError(Exception):
    """A transform of the recipe failed on an image (a crop larger than it...): the message
    names the step, its line and the error, which is also ``__cause__``."""

    def __init__(self, message: str, step: Step | None = None, transform: Any = None):
        super().__init__(message)
        self.step = step
        self.transform = transform

    def __reduce__(self):  # the step and transform stay behind when it crosses processes
        return (TransformError, (str(self),))


def parse_recipe(data: Any, source: str = "<recipe>") -> Recipe:
    """A Recipe from already-loaded data: augkit's form or albumentations' ``A.to_dict`` form."""
    where = Where(source)
    if not isinstance(data, Mapping) or not hasattr(data, "key_lines"):  # Python data, not read from YAML
        problem = check_data_bounds(data)
        if problem:
            raise where.error(None, f"the recipe {problem}")
    return _parse(data, where)


def _parse(data: Any, where: Where) -> Recipe:
    if not isinstance(data, Mapping):
        raise where.error(line_of(data), "a recipe is a mapping with a `transforms:` list")
    from_file = where.base is not None
    if "transform" in data and isinstance(data["transform"], Mapping):
        root = data["transform"]
        for key in ("bbox_params", "keypoint_params"):
            if root.get(key):
                where.report(line_of(root, key), f"{key} is set; augkit recipes are for image classification")
        nodes = root.get("transforms", [])
        nodes = nodes if isinstance(nodes, list) else []
        steps = [step for step in (from_albumentations(node, where) for node in nodes) if step is not None]
        if root.get("p", 1.0) != 1.0:
            steps = [Step("Sequential", {"p": root["p"]}, line_of(root), {}, steps)]
        return Recipe(steps, seed=_seed(data, where), source=where.source, from_file=from_file, _where=where,
                      **_flags(data, where))
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            hint = close_matches(str(key), TOP_LEVEL_KEYS)
            if key in registry_mod.registry():
                fix = "list transforms under `transforms:`"
            else:
                fix = f"did you mean {hint[0]!r}?" if hint else f"allowed: {', '.join(TOP_LEVEL_KEYS)}"
            where.report(line_of(data, key), f"unknown top-level key {short(key)}; {fix}")
    if "transforms" not in data:
        if not where.problems:  # else a misspelled key said it already
            where.report(line_of(data), "missing `transforms:` (the list of transforms to apply)")
        where.raise_problems()
    seed, flags = _seed(data, where), _flags(data, where)
    steps = parse_steps(data["transforms"], where, line_of(data, "transforms"))
    return Recipe(steps, seed=seed, source=where.source, from_file=from_file, _where=where, **flags)


def _seed(data: Mapping, where: Where) -> int | None:
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        where.report(line_of(data, "seed"), f"seed must be a non-negative integer, got {short(seed)}")
        return None
    return seed


def _flags(data: Mapping, where: Where) -> dict[str, bool]:
    """The recipe's true/false options: how its images are decoded and run."""
    flags = {"reduced_decode": True, "fuse_geometry": False}
    for key, default in flags.items():
        value = data.get(key, default)
        if isinstance(value, bool):
            flags[key] = value
        else:
            where.report(line_of(data, key), f"{key} must be true or false, got {short(value)}")
    return flags


def load_recipe(recipe: str | os.PathLike | Mapping | Recipe) -> Recipe:
    """A Recipe from a path (YAML or albumentations JSON/YAML), a dict, or a Recipe.

    A path must name a regular file of at most MAX_RECIPE_BYTES (see
    :mod:`augkit.recipes.source` for that and the YAML limits)."""
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, Mapping):
        return parse_recipe(recipe, "<dict>")
    source = str(recipe)
    try:
        text = read_regular_file(recipe, MAX_RECIPE_BYTES).decode("utf-8")
    except FileNotFoundError:
        raise RecipeError(f"{source}: recipe file not found; check the path (augkit's ready recipes, such as "
                          f"standard.yaml, are in the recipes/ folder of its repository)") from None
    except FileRefused as exc:
        fix = "a recipe is a few hundred lines of YAML" if "larger" in str(exc) else "give the path of a recipe file"
        raise RecipeError(f"{source}: {exc}; {fix}") from None
    except UnicodeDecodeError:
        raise RecipeError(f"{source}: not a text file; a recipe is YAML or JSON") from None
    except OSError as exc:
        raise RecipeError(f"{source}: cannot read the recipe: {exc.strerror or exc}") from None
    where = Where(source, from_file=True)
    try:
        data = parse_yaml(text)
    except YAMLProblem as exc:
        raise where.error(exc.line, exc.problem) from None
    return _parse(data, where)


EXPORTED_BY = "augkit recipe export"  # an exported file's "written_by" (A.load reads only "transform")


def save_albumentations(recipe: Recipe, path: str | os.PathLike, data_format: str | None = None) -> None:
    """Write the recipe as albumentations' ``A.save`` would (json or yaml, from the suffix),
    saying who wrote it (``written_by``), so that an export may replace its own file."""
    path = Path(path)
    data_format = data_format or ("yaml" if path.suffix.lower() in (".yaml", ".yml") else "json")
    data = {**recipe.to_albumentations(), "written_by": EXPORTED_BY}
    text = yaml.safe_dump(data, sort_keys=False) if data_format == "yaml" else json.dumps(data, indent=2)
    write_text_atomic(path, text)


def is_exported(path: str | os.PathLike) -> bool:
    """A file ``augkit recipe export`` wrote (read only if small enough to be one)."""
    try:
        if os.path.getsize(path) > 1 << 24:
            return False
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))  # JSON is YAML too
    except (OSError, ValueError, yaml.YAMLError):
        return False
    return isinstance(data, Mapping) and data.get("written_by") == EXPORTED_BY
