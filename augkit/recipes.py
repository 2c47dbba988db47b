"""Recipes: a YAML (or albumentations JSON) file that declares an augmentation pipeline.

    seed: 42                      # optional default seed
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
fix. Warnings albumentations would only print become errors too.

A file saved by albumentations' own ``A.save`` (JSON or YAML) loads the same way, and
:meth:`Recipe.to_albumentations` writes that format back.

Every augkit command takes what a recipe returns as a uint8 RGB image (HxWx3). A recipe
that can return anything else (``Normalize``, ``ToFloat`` without ``FromFloat``, one-channel
``ToGray``, in any branch that may fire) still runs from Python, ``recipe(image)``, but
:meth:`Recipe.require_image_output` refuses it for a command, naming the step and the fix;
:func:`require_image` catches at run time what no step declares (a ``Lambda``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from augkit import transforms as registry_mod
from augkit.errors import RecipeError
from augkit.files import write_text_atomic
from augkit.seeds import seed_pipeline

TOP_LEVEL_KEYS = ("seed", "transforms", "name", "description")


# --- YAML with line numbers -------------------------------------------------------------


class _LineDict(dict):
    line: int | None = None
    key_lines: dict[Any, int]


class _LineList(list):
    line: int | None = None
    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings and lists remember the line of every key and item."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _LineDict:
    loader.flatten_mapping(node)
    result = _LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (the second one would silently win)", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> _LineList:
    result = _LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def _line_of(container: Any, key: Any = None) -> int | None:
    if key is not None and isinstance(container, _LineDict):
        return container.key_lines.get(key, container.line)
    return getattr(container, "line", None)


# --- the parsed form ---------------------------------------------------------------------


@dataclass
class Step:
    """One transform as the recipe wrote it, with where it wrote it."""

    name: str
    args: dict[str, Any]
    line: int | None = None
    arg_lines: dict[str, int] = field(default_factory=dict)
    children: list[Step] | None = None  # compositions only
    serialized: bool = False  # from albumentations' A.to_dict, not written by a person


class _Where:
    """Formats ``file:line: message`` for one recipe source."""

    def __init__(self, source: str):
        self.source = source
        # Paths inside a recipe (PCAColor's stats file) are relative to the recipe file.
        self.base = os.path.dirname(os.path.abspath(source)) if os.path.isfile(source) else None

    def error(self, line: int | None, message: str) -> RecipeError:
        at = f"{self.source}:{line}" if line else self.source
        return RecipeError(f"{at}: {message}")


def _parse_steps(items: Any, where: _Where, line: int | None) -> list[Step]:
    if not isinstance(items, list) or not items:
        raise where.error(line, "'transforms' must be a non-empty list of `- Name: {args}` items")
    lines = getattr(items, "item_lines", [line] * len(items))
    return [_parse_step(item, where, item_line) for item, item_line in zip(items, lines)]


def _parse_step(item: Any, where: _Where, line: int | None) -> Step:
    known = registry_mod.registry()
    if isinstance(item, str):
        name, args, arg_lines = item, {}, {}
    elif isinstance(item, Mapping) and len(item) == 1:
        ((name, args),) = item.items()
        if args is None:
            args = {}
        if not isinstance(args, Mapping):
            raise where.error(line, f"{name}: arguments must be a mapping such as {{p: 0.5}}, got {args!r}")
        arg_lines = dict(getattr(args, "key_lines", {}))
    elif isinstance(item, Mapping) and item:
        names = [k for k in item if k in known]
        if len(names) == 1:
            others = ", ".join(str(k) for k in item if k != names[0])
            raise where.error(line, f"{names[0]}: {others} must be indented under {names[0]}: (one more level)")
        raise where.error(line, "each transform is one `Name: {args}` mapping, e.g. `- HorizontalFlip: {p: 0.5}`")
    else:
        raise where.error(line, f"expected a transform such as `- HorizontalFlip: {{p: 0.5}}`, got {item!r}")
    if not isinstance(name, str):
        raise where.error(line, f"a transform name must be text, got {name!r}")
    args = dict(args)
    children = None
    entry = known.get(name)
    if entry is not None and entry.kind == "composition":
        if "transforms" not in args:
            raise where.error(line, f"{name} needs `transforms:` with the list of transforms it chooses from")
        children = _parse_steps(args.pop("transforms"), where, arg_lines.get("transforms", line))
    return Step(name, args, line, arg_lines, children)


def _from_albumentations(node: Mapping, where: _Where) -> Step:
    """A ``{"__class_fullname__": ..., ...}`` node of ``A.to_dict`` output -> Step."""
    line = _line_of(node)
    full = node.get("__class_fullname__")
    if not isinstance(full, str):
        raise where.error(line, "albumentations node without '__class_fullname__'")
    name = full.rsplit(".", 1)[-1]
    entry = registry_mod.registry().get(name)
    # A.to_dict writes some attributes its own constructors do not take (RGBShift's
    # 'approximation'; A.load only warns about them): keep just the real arguments.
    accepted = entry.arguments if entry is not None else None
    args = {
        k: v
        for k, v in node.items()
        if k not in ("__class_fullname__", "transforms") and (accepted is None or k in accepted)
    }
    arg_lines = dict(getattr(node, "key_lines", {}))
    children = None
    if "transforms" in node:
        children = [_from_albumentations(child, where) for child in node["transforms"]]
    return Step(name, args, line, arg_lines, children, serialized=True)


def _serialized_extras(cls: type, valid: dict[str, Any]) -> set[str]:
    """Arguments A.to_dict writes for cls that its own __init__ does not take: it writes
    those of every parent class too (RGBShift gets AdditiveNoise's noise_type...)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            names.update(registry_mod.argument_defaults(klass))
    return names - set(valid)


def _drop_serialized_extras(node: dict[str, Any]) -> None:
    """Remove what A.load would only warn about and ignore (see _serialized_extras)."""
    entry = registry_mod.registry().get(node["__class_fullname__"].rsplit(".", 1)[-1])
    if entry is not None:
        for key in _serialized_extras(entry.cls, entry.arguments) & set(node):
            del node[key]
    for child in node.get("transforms", []):
        _drop_serialized_extras(child)


# --- building ------------------------------------------------------------------------------


def _pydantic_message(exc: Exception) -> tuple[str | None, str]:
    """(offending key, one-line message) from a pydantic ValidationError or a plain error."""
    # albumentations re-raises pydantic's ValidationError as a ValueError from it.
    source = exc if callable(getattr(exc, "errors", None)) else exc.__cause__
    errors = getattr(source, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
        except Exception:  # noqa: BLE001 - any odd error object: fall back to its text
            first = None
        if first:
            key = str(first["loc"][0]) if first.get("loc") else None
            msg = first.get("msg", "invalid value").removeprefix("Value error, ")
            if first.get("type") == "missing":
                return key, f"{key} is required"
            if "input" in first and key is not None and first.get("type") != "missing":
                msg = f"{msg} (got {first['input']!r})"
            return key, f"{key}: {msg}" if key else msg
    return None, " ".join(str(exc).split())


def _build(step: Step, where: _Where):
    known = registry_mod.registry()
    entry = known.get(step.name)
    if entry is None:
        reason = registry_mod.NOT_FOR_CLASSIFICATION.get(step.name)
        if reason:
            raise where.error(step.line, f"{step.name} {reason}, which an image-classification recipe has not")
        hint = registry_mod.close_matches(step.name, list(known))
        fix = f"did you mean {' or '.join(hint)}?" if hint else "run `augkit transforms` to list them"
        raise where.error(step.line, f"unknown transform {step.name!r}; {fix}")
    valid = entry.arguments
    kwargs: dict[str, Any] = {}
    for key, value in step.args.items():
        line = step.arg_lines.get(key, step.line)
        if key not in valid:
            if step.serialized and key in _serialized_extras(entry.cls, valid):
                continue  # A.load ignores these too
            renamed = registry_mod.renamed_argument(step.name, str(key))
            if renamed:
                raise where.error(line, f"{step.name}: '{key}' is an albumentations 1.x argument; write {renamed} instead")
            hint = registry_mod.close_matches(str(key), list(valid))
            fix = f"did you mean {' or '.join(hint)}?" if hint else f"valid: {', '.join(valid)}"
            raise where.error(line, f"{step.name}: unknown argument {key!r}; {fix}")
        try:
            kwargs[key] = registry_mod.resolve_enum(key, value)
            if key in getattr(entry.cls, "path_arguments", ()) and isinstance(value, str) and where.base:
                kwargs[key] = os.path.join(where.base, value)
        except ValueError as exc:
            raise where.error(line, f"{step.name}: {key}: {exc}") from None
    if step.children is not None:
        kwargs["transforms"] = [_build(child, where) for child in step.children]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            transform = entry.cls(**kwargs)
        except (ValueError, TypeError) as exc:
            key, msg = _pydantic_message(exc)
            raise where.error(step.arg_lines.get(key, step.line), f"{step.name}: {msg}") from None
    for warning in caught:
        # Only what the transform says about itself: a ResourceWarning from garbage
        # collection (say) can fire while we listen and is none of the recipe's business.
        if not issubclass(warning.category, (UserWarning, DeprecationWarning, FutureWarning)):
            continue
        text = " ".join(str(warning.message).split())
        if not registry_mod.INFORMATIONAL_WARNINGS.search(text):
            raise where.error(step.line, f"{step.name}: {text}")
    return transform


# --- the recipe ----------------------------------------------------------------------------


class Recipe:
    """A validated pipeline. ``recipe(image, seed=s)`` returns the augmented RGB uint8 array.

    ``recipe.compose`` is the underlying ``albumentations.Compose`` for users who want it.
    Calling a recipe re-seeds that Compose, so one Recipe must not be called from two
    threads at once (worker processes each have their own copy).
    """

    def __init__(self, steps: list[Step], *, seed: int | None = None, source: str = "<recipe>"):
        self.steps = steps
        self.seed = seed
        self.source = source
        where = _Where(source)
        self._transforms = [_build(step, where) for step in steps]

    @functools.cached_property
    def compose(self):
        return self._make_compose(save_applied_params=False)

    @functools.cached_property
    def _tracing_compose(self):
        return self._make_compose(save_applied_params=True)

    def _make_compose(self, save_applied_params: bool, transforms: list | None = None):
        from augkit._albu import albumentations

        A = albumentations()
        compose = A.Compose(self._transforms if transforms is None else transforms, strict=True,
                            save_applied_params=save_applied_params)
        if self.seed is not None:
            seed_pipeline(compose, self.seed)
        return compose

    # Pickled as its parsed steps and rebuilt on arrival, so a Recipe can be shipped to
    # worker processes without relying on albumentations objects pickling faithfully.
    def __getstate__(self) -> dict[str, Any]:
        return {"steps": self.steps, "seed": self.seed, "source": self.source}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["steps"], seed=state["seed"], source=state["source"])

    def __call__(self, image, seed: int | None = None):
        if seed is not None:
            seed_pipeline(self.compose, seed)
        return self.compose(image=image)["image"]

    def trace(self, image, seed: int | None = None):
        """(augmented image, [(transform name, drawn params), ...] for the transforms that fired)."""
        compose = self._tracing_compose
        if seed is not None:
            seed_pipeline(compose, seed)
        result = compose(image=image)
        return result["image"], list(result.get("applied_transforms", []))

    def for_image(self, image) -> ImageAugmenter:
        """``augment = recipe.for_image(image)``; ``augment(seed)`` equals ``recipe(image,
        seed=seed)``, for many seeds at less cost: see :class:`ImageAugmenter`."""
        return ImageAugmenter(self, image)

    @functools.cached_property
    def _always_applied(self) -> list:
        """The leading transforms that always apply: those an :class:`ImageAugmenter` may
        run once per image (it checks that they draw no random number)."""
        head = []
        for transform in self._transforms:
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
            self._tails[start] = self._make_compose(False, self._transforms[start:])
        return self._tails[start]

    def to_albumentations(self) -> dict[str, Any]:
        """The pipeline in albumentations' ``A.to_dict`` format (what ``A.save`` writes)."""
        from augkit._albu import albumentations

        data = albumentations().to_dict(self.compose)
        for node in data["transform"]["transforms"]:
            _drop_serialized_extras(node)
        if self.seed is not None:
            data["seed"] = self.seed  # A.to_dict does not keep it; augkit reads it back
        return data

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 of the resolved pipeline (every argument, defaults included), not of the
        file's text: comments and formatting do not change it, any real change does."""
        data = self.to_albumentations()
        data.pop("seed", None)
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
    def _outputs(self) -> frozenset[_Output]:
        return _sequence_outputs(self.steps, self._transforms, frozenset({_Output()}))

    @property
    def _not_an_image(self) -> _Output | None:
        """The earliest step whose output a command cannot use, if any may reach the end."""
        bad = [o for o in self._outputs if not o.is_image]
        return min(bad, key=lambda o: (o.line or 0, o.name)) if bad else None

    def describe_output(self) -> str:
        """What the recipe returns, for ``augkit recipe check``: ``uint8 RGB``, or what a
        step makes of it and that the commands cannot use it."""
        bad = self._not_an_image
        if bad is None:
            return "uint8 RGB"
        when = " (when it fires)" if any(o.is_image for o in self._outputs) else ""
        return (f"{bad.label} after {bad.name}{_at_line(bad.line)}{when}: usable only from Python (recipe(image)), "
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
        raise _Where(self.source).error(bad.line, f"{bad.name} {bad.problem}, but augkit's commands take uint8 RGB "
                                                  f"images; {advice}")

    def __repr__(self) -> str:
        return f"Recipe({self.source!r}, {len(self.steps)} steps, seed={self.seed})"


# --- what a recipe returns ----------------------------------------------------------------


@dataclass(frozen=True)
class _Output:
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


def _at_line(line: int | None) -> str:
    return f" at line {line}" if line else ""


def _leaf_output(step: Step, transform: Any, before: _Output) -> _Output:
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
    after = _Output(dtype, channels)
    if after.is_image:
        return after  # FromFloat after ToFloat: an image again
    # The first step to go wrong stays the cause, unless this one now decides alone what
    # was wrong (FromFloat picks the dtype of a float RGB image).
    decides = kind == "FromFloat" and before.dtype.startswith("float") and before.channels == 3
    if not before.is_image and not decides:
        return replace(before, dtype=dtype, channels=channels)
    return _Output(dtype, channels, kind, step.line, problem, fix)


def _sequence_outputs(steps: list[Step], transforms: list, before: frozenset[_Output]) -> frozenset[_Output]:
    for step, transform in zip(steps, transforms, strict=True):
        before = _step_outputs(step, transform, before)
    return before


def _step_outputs(step: Step, transform: Any, before: frozenset[_Output], forced: bool = False) -> frozenset[_Output]:
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
        fired = _sequence_outputs(step.children, transform.transforms, before)
    return fired if forced or p >= 1 else before | fired


class NotAnImageError(ValueError):
    """A recipe returned something other than a uint8 RGB image at run time."""


def require_image(result: Any) -> np.ndarray:
    """``result`` if it is a uint8 HxWx3 array, else :class:`NotAnImageError`.

    The run-time guard behind the static check (:meth:`Recipe.require_image_output`), for
    what no step declares (a ``Lambda``): every consumer that feeds a recipe's result on
    calls it, and its per-sample error handling turns the error into a failure row."""
    if isinstance(result, np.ndarray) and result.dtype == np.uint8 and result.ndim == 3 and result.shape[2] == 3:
        return result
    what = f"{result.dtype} {result.shape}" if isinstance(result, np.ndarray) else type(result).__name__
    raise NotAnImageError(f"the recipe returned {what}, not a uint8 RGB image (HxWx3)")


class _UsedRandomness(Exception):
    pass


class _Tripwire:
    """Stands in for a transform's generators while :class:`ImageAugmenter` runs the head:
    any use of it means the head's result could depend on the seed."""

    touched = False

    def __getattr__(self, name: str):
        self.touched = True
        raise _UsedRandomness(name)


class ImageAugmenter:
    """Augmented versions of one image: ``augmenter(seed)`` is ``recipe(image, seed=seed)``,
    byte for byte, and always an image: a result that is not uint8 RGB raises
    :class:`NotAnImageError` (see :func:`require_image`), which the commands that use an
    ImageAugmenter record as a failed sample.

    A recipe often starts with transforms that always apply and draw no random number
    (``SmallestMaxSize``, ``Resize``, ``CenterCrop``; ``ToGray`` with ``p: 1``): their result is
    the same for every seed, so it is computed once, on the first call, and each seed runs
    only the rest of the pipeline. Which transforms draw is not guessed from their names:
    the leading always-applied ones run with generators that refuse every use, and the
    head ends before the first that uses one (``RandomCrop``; ``SmallestMaxSize(max_size=
    [224, 256])``, which picks a size). With one shared stream (:func:`seed_pipeline`) and
    a head that draws nothing, the rest of the pipeline sees exactly the draws it sees in
    a full run.
    """

    def __init__(self, recipe: Recipe, image):
        self.recipe = recipe
        self.image = image
        self._head: tuple[int, Any] | None = None  # (transforms run once, their output)

    def __call__(self, seed: int):
        if self._head is None:
            self._head = (0, self.image)  # if the head raises, every seed raises it below
            self._head = _run_head(self.recipe._always_applied, self.image)
        done, output = self._head
        if done == 0:
            return require_image(self.recipe(self.image, seed=seed))
        tail = self.recipe._tail(done)
        seed_pipeline(tail, seed)
        return require_image(tail(image=output)["image"])


def _run_head(candidates: list, image) -> tuple[int, Any]:
    """(how many of ``candidates`` ran without touching a random generator, their output)."""
    saved = [(t.random_generator, t.py_random) for t in candidates]
    done = 0
    try:
        for t in candidates:
            trip = _Tripwire()
            t.set_random_state(trip, trip)
            try:
                result = t(image=image)["image"]
            except _UsedRandomness:
                break
            if trip.touched:  # used, and the exception swallowed on the way
                break
            image, done = result, done + 1
    finally:
        for t, (generator, py_random) in zip(candidates, saved):
            t.set_random_state(generator, py_random)
    return done, image


def parse_recipe(data: Any, source: str = "<recipe>") -> Recipe:
    """A Recipe from already-loaded data: augkit's form or albumentations' ``A.to_dict`` form."""
    where = _Where(source)
    if not isinstance(data, Mapping):
        raise where.error(_line_of(data), "a recipe is a mapping with a `transforms:` list")
    if "transform" in data and isinstance(data["transform"], Mapping):
        root = data["transform"]
        for key in ("bbox_params", "keypoint_params"):
            if root.get(key):
                raise where.error(_line_of(root, key), f"{key} is set; augkit recipes are for image classification")
        steps = [_from_albumentations(node, where) for node in root.get("transforms", [])]
        if root.get("p", 1.0) != 1.0:
            steps = [Step("Sequential", {"p": root["p"]}, _line_of(root), {}, steps)]
        return Recipe(steps, seed=_seed(data, where), source=source)
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            hint = registry_mod.close_matches(str(key), TOP_LEVEL_KEYS)
            if key in registry_mod.registry():
                fix = "list transforms under `transforms:`"
            else:
                fix = f"did you mean {hint[0]!r}?" if hint else f"allowed: {', '.join(TOP_LEVEL_KEYS)}"
            raise where.error(_line_of(data, key), f"unknown top-level key {key!r}; {fix}")
    if "transforms" not in data:
        raise where.error(_line_of(data), "missing `transforms:` (the list of transforms to apply)")
    steps = _parse_steps(data["transforms"], where, _line_of(data, "transforms"))
    return Recipe(steps, seed=_seed(data, where), source=source)


def _seed(data: Mapping, where: _Where) -> int | None:
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise where.error(_line_of(data, "seed"), f"seed must be a non-negative integer, got {seed!r}")
    return seed


def load_recipe(recipe: str | os.PathLike | Mapping | Recipe) -> Recipe:
    """A Recipe from a path (YAML or albumentations JSON/YAML), a dict, or a Recipe."""
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, Mapping):
        return parse_recipe(recipe, "<dict>")
    path = Path(recipe)
    source = str(recipe)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"{source}: recipe file not found; check the path (ready recipes are in recipes/)") from None
    except IsADirectoryError:
        raise RecipeError(f"{source}: is a folder, not a recipe file") from None
    except UnicodeDecodeError:
        raise RecipeError(f"{source}: not a text file; a recipe is YAML or JSON") from None
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        if exc.context_mark and "<stream end>" in (exc.problem or ""):
            line = exc.context_mark.line + 1  # an unclosed bracket: where it opened, not past the end
        problem = " ".join(f"{exc.context or ''} {exc.problem or ''}".split())
        raise _Where(source).error(line, f"not valid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise _Where(source).error(None, f"not valid YAML: {' '.join(str(exc).split())}") from None
    return parse_recipe(data, source)


def save_albumentations(recipe: Recipe, path: str | os.PathLike, data_format: str | None = None) -> None:
    """Write the recipe as albumentations' ``A.save`` would (json or yaml, from the suffix)."""
    path = Path(path)
    data_format = data_format or ("yaml" if path.suffix.lower() in (".yaml", ".yml") else "json")
    data = recipe.to_albumentations()
    text = yaml.safe_dump(data, sort_keys=False) if data_format == "yaml" else json.dumps(data, indent=2)
    write_text_atomic(path, text)
