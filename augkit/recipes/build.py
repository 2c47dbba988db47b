"""Building a recipe: its parsed form (:class:`Step`), and each step built into an
albumentations transform, with every problem found reported at once.

A step is built exactly as written: an unknown name, an unknown or 1.x-era argument
(:mod:`augkit.recipes.legacy_args` says what to write), a wrong type or an out-of-range value, a
warning albumentations would only print, or a value that builds but cannot run
(:mod:`augkit.recipes.checks`) is a problem, reported by :class:`Where` as ``file:line:
message`` and raised together as one :class:`~augkit.core.errors.RecipeError`, a line each.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from augkit.recipes import legacy_args
from augkit.recipes import transforms as registry_mod
from augkit.core.errors import RecipeError
from augkit.core.words import close_matches
from augkit.recipes.checks import argument_problems, composition_problems, number_problems
from augkit.recipes.source import line_of


MAX_COMPOSITION_DEPTH = 32  # OneOf inside SomeOf inside ...: real recipes nest two or three
MAX_TRANSFORMS = 1000  # a recipe lists tens; each one costs building and checking


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


class Where:
    """Formats ``file:line: message`` for one recipe source, and collects the problems
    found, so that one run reports every one of them."""

    def __init__(self, source: str, from_file: bool = False):
        self.source = source
        # Paths inside a recipe (PCAColor's stats file) are relative to the recipe file.
        self.base = os.path.dirname(os.path.abspath(source)) if from_file else None
        self.problems: list[tuple[int, str]] = []
        self.transforms = 0

    def error(self, line: int | None, message: str) -> RecipeError:
        at = f"{self.source}:{line}" if line else self.source
        return RecipeError(f"{at}: {message}")

    def report(self, line: int | None, message: str) -> None:
        self.problems.append((line or 0, str(self.error(line, message))))

    def raise_problems(self) -> None:
        """One RecipeError with a line per problem, in line order, if there are any."""
        if self.problems:
            ordered = [text for _, text in sorted(self.problems, key=lambda problem: problem[0])]
            raise RecipeError("\n".join(dict.fromkeys(ordered)))


def parse_steps(items: Any, where: Where, line: int | None, depth: int = 0) -> list[Step]:
    if not isinstance(items, list) or not items:
        where.report(line, "'transforms' must be a non-empty list of `- Name: {args}` items")
        return []
    lines = getattr(items, "item_lines", [line] * len(items))
    steps = [_parse_step(item, where, item_line, depth) for item, item_line in zip(items, lines)]
    return [step for step in steps if step is not None]


def _counted(where: Where, line: int | None) -> bool:
    """Count one more transform; False (reported once) past MAX_TRANSFORMS."""
    where.transforms += 1
    if where.transforms == MAX_TRANSFORMS + 1:
        where.report(line, f"more than {MAX_TRANSFORMS} transforms; a recipe lists tens (is this a recipe?)")
    return where.transforms <= MAX_TRANSFORMS


def _parse_step(item: Any, where: Where, line: int | None, depth: int) -> Step | None:
    known = registry_mod.registry()
    if not _counted(where, line):
        return None
    if isinstance(item, str):
        name, args, arg_lines = item, {}, {}
    elif isinstance(item, Mapping) and len(item) == 1:
        ((name, args),) = item.items()
        if args is None:
            args = {}
        if not isinstance(args, Mapping):
            where.report(line, f"{name}: arguments must be a mapping such as {{p: 0.5}}, got {short(args)}")
            return None
        arg_lines = dict(getattr(args, "key_lines", {}))
    elif isinstance(item, Mapping) and item:
        names = [k for k in item if isinstance(k, str) and k in known]
        if len(names) == 1:
            others = ", ".join(str(k) for k in item if k != names[0])
            where.report(line, f"{names[0]}: {others} must be indented under {names[0]}: (one more level)")
        else:
            where.report(line, "each transform is one `Name: {args}` mapping, e.g. `- HorizontalFlip: {p: 0.5}`")
        return None
    else:
        where.report(line, f"expected a transform such as `- HorizontalFlip: {{p: 0.5}}`, got {short(item)}")
        return None
    if not isinstance(name, str):
        where.report(line, f"a transform name must be text, got {short(name)}")
        return None
    args = dict(args)
    children = None
    entry = known.get(name)
    if entry is not None and entry.kind == "composition":
        if "transforms" not in args:
            where.report(line, f"{name} needs `transforms:` with the list of transforms it chooses from")
            return None
        if depth >= MAX_COMPOSITION_DEPTH:
            where.report(line, f"{name}: compositions nested deeper than {MAX_COMPOSITION_DEPTH} levels")
            return None
        children = parse_steps(args.pop("transforms"), where, arg_lines.get("transforms", line), depth + 1)
        if not children:
            return None
    return Step(name, args, line, arg_lines, children)


def short(value: Any) -> str:
    """repr(value), cut to one short line: a recipe's value may be long or nested."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 80 else text[:77] + "..."


def from_albumentations(node: Any, where: Where, depth: int = 0) -> Step | None:
    """A ``{"__class_fullname__": ..., ...}`` node of ``A.to_dict`` output -> Step."""
    line = line_of(node)
    full = node.get("__class_fullname__") if isinstance(node, Mapping) else None
    if not isinstance(full, str):
        where.report(line, "albumentations node without '__class_fullname__'")
        return None
    if not _counted(where, line):
        return None
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
        if depth >= MAX_COMPOSITION_DEPTH:
            where.report(line, f"{name}: compositions nested deeper than {MAX_COMPOSITION_DEPTH} levels")
            return None
        nodes = node["transforms"] if isinstance(node["transforms"], list) else []
        children = [c for c in (from_albumentations(n, where, depth + 1) for n in nodes) if c is not None]
        if len(children) != len(nodes) or not children:
            if not nodes:
                where.report(line, f"{name}: 'transforms' must be a non-empty list")
            return None
    return Step(name, args, line, arg_lines, children, serialized=True)


def _serialized_extras(cls: type, valid: dict[str, Any]) -> set[str]:
    """Arguments A.to_dict writes for cls that its own __init__ does not take: it writes
    those of every parent class too (RGBShift gets AdditiveNoise's noise_type...)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            names.update(registry_mod.argument_defaults(klass))
    return names - set(valid)


def drop_serialized_extras(node: dict[str, Any]) -> None:
    """Remove what A.load would only warn about and ignore (see _serialized_extras)."""
    entry = registry_mod.registry().get(node["__class_fullname__"].rsplit(".", 1)[-1])
    if entry is not None:
        for key in _serialized_extras(entry.cls, entry.arguments) & set(node):
            del node[key]
    for child in node.get("transforms", []):
        drop_serialized_extras(child)


# --- building ------------------------------------------------------------------------------


def _pydantic_messages(exc: Exception) -> list[tuple[str | None, str]]:
    """(offending key, one-line message) for each argument a pydantic ValidationError, or a
    plain error, complains about."""
    # albumentations re-raises pydantic's ValidationError as a ValueError from it.
    source = exc if callable(getattr(exc, "errors", None)) else exc.__cause__
    errors = getattr(source, "errors", None)
    found: dict[str | None, dict] = {}
    if callable(errors):
        try:
            listed = list(errors())
        except Exception:  # noqa: BLE001 - any odd error object: fall back to its text
            listed = []
        for error in listed:
            loc = error.get("loc") or ()
            key = str(loc[0]) if loc else None
            if key in found:
                # A union (tuple or int): keep the branch that matches what was written.
                written = error.get("input")
                branch = str(loc[1]) if len(loc) > 1 else ""
                if isinstance(written, (list, tuple)) == ("tuple" in branch or "list" in branch):
                    found[key] = error
                continue
            found[key] = error
    messages = []
    for key, error in found.items():
        msg = error.get("msg", "invalid value").removeprefix("Value error, ")
        if error.get("type") == "missing":
            loc = error.get("loc") or ()
            messages.append((key, f"{key} is required" if len(loc) < 2 else f"{key}: {_too_few(loc, error.get('input'))}"))
            continue
        if "input" in error and key is not None:
            msg = f"{msg} (got {short(error['input'])})"
            if isinstance(error["input"], str) and _LOOKS_LIKE_A_NUMBER.match(error["input"]):
                msg += f"; YAML reads {error['input']} as text: write a number such as 1.0e+3"
        messages.append((key, f"{key}: {msg}" if key else msg))
    return messages or [(None, " ".join(str(exc).split()))]


def _too_few(loc: tuple, written) -> str:
    """The message for a list with an item missing (pydantic's ``missing`` inside a tuple:
    ``('size', 1)``, or in a union's tuple branch ``('fill', 'tuple[float, float, float]', 2)``)."""
    branch = next((str(p) for p in loc[1:] if isinstance(p, str) and p.startswith("tuple[")), "")
    position = next((p for p in reversed(loc) if isinstance(p, int)), 0)
    count = f"{branch.count(',') + 1} values" if branch and "..." not in branch else f"at least {position + 1} values"
    return f"give {count} (got {short(written)})"


_LOOKS_LIKE_A_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")  # YAML 1.1 wants 1.0e+3


def _lambda_name(kwargs: dict[str, Any]) -> str:
    """A Lambda's name for A.to_dict (which refuses one without) from its functions' names."""
    names = [getattr(f, "__qualname__", "lambda") for k, f in kwargs.items() if callable(f) and k != "name"]
    return "+".join(names) or "Lambda"


def build(step: Step, where: Where):
    """The transform for ``step``, or None after reporting every problem it has: its name
    (:func:`_entry`), each argument (:func:`_arguments`), its children, then what the
    transform itself says when made (:func:`_construct`) and :func:`argument_problems`."""
    entry = _entry(step, where)
    if entry is None:
        return None
    args = _arguments(step, entry, where)
    if step.children is not None:
        children = [build(child, where) for child in step.children]
        if any(child is None for child in children):
            return None
        args.kwargs["transforms"] = children
    if step.name == "Lambda" and not args.kwargs.get("name"):
        args.kwargs["name"] = _lambda_name(args.kwargs)
    transform = _construct(step, entry, args, where)
    if transform is None:
        return None
    for key, message in argument_problems(step, transform):
        where.report(step.arg_lines.get(key, step.line), f"{step.name}: {message}")
        args.ok = False
    return transform if args.ok else None


@dataclass
class _Arguments:
    """A step's arguments on their way to the transform."""

    kwargs: dict[str, Any] = field(default_factory=dict)
    ok: bool = True  # False once any problem was reported
    quiet: set = field(default_factory=set)  # keys already reported: the transform's own complaint is not repeated


def _entry(step: Step, where: Where):
    """The registry entry for ``step.name``, or None after saying what to write instead."""
    known = registry_mod.registry()
    entry = known.get(step.name)
    if entry is None:
        reason = registry_mod.NOT_FOR_CLASSIFICATION.get(step.name)
        renamed = legacy_args.RENAMED_TRANSFORMS.get(step.name)
        if reason:
            where.report(step.line, f"{step.name} {reason}, which an image-classification recipe has not")
        elif renamed:
            where.report(step.line, f"{step.name} is albumentations 1.x; write {renamed} instead (its arguments: "
                                    f"`augkit transforms {renamed}`)")
        else:
            hint = close_matches(step.name, list(known))
            fix = f"did you mean {' or '.join(hint)}?" if hint else "run `augkit transforms` to list them"
            where.report(step.line, f"unknown transform {step.name!r}; {fix}")
        return None
    if step.name == "Lambda" and where.base is not None:
        where.report(step.line, "Lambda runs Python functions, which a recipe file cannot hold; build a recipe "
                                "with a Lambda from Python: load_recipe({'transforms': [...]})")
        return None
    return entry


def _arguments(step: Step, entry, where: Where) -> _Arguments:
    """The keyword arguments for ``entry.cls``: words resolved (``border_mode: reflect_101``),
    paths taken from the recipe's folder; each value that cannot run, each unknown word and
    each unknown or 1.x argument reported."""
    valid = entry.arguments
    out = _Arguments()
    given = {k: v for k, v in step.args.items() if k in valid}
    checks = number_problems(given)
    if entry.kind == "composition":
        checks += [c for c in composition_problems(given) if c[0] not in {key for key, _ in checks}]
    for key, message in checks:
        where.report(step.arg_lines.get(key, step.line), f"{step.name}: {message}")
        out.quiet.add(key)
        out.ok = False
    unknown = {}
    for key, value in step.args.items():
        if key not in valid:
            if not (step.serialized and key in _serialized_extras(entry.cls, valid)):  # A.load ignores these
                unknown[key] = value
            continue
        if key in out.quiet:
            continue
        try:
            out.kwargs[key] = registry_mod.resolve_enum(key, value)
            if key in getattr(entry.cls, "path_arguments", ()) and isinstance(value, str) and where.base:
                out.kwargs[key] = os.path.join(where.base, value)
        except ValueError as exc:
            where.report(step.arg_lines.get(key, step.line), f"{step.name}: {key}: {exc}")
            out.ok = False
    _report_unknown(step, unknown, valid, where, out)
    return out


def _report_unknown(step: Step, unknown: dict, valid, where: Where, out: _Arguments) -> None:
    """Arguments the transform does not take: the 1.x fix where there is one (and no
    "size is required" on top of it), else the closest names."""
    for fix in legacy_args.fixes(step.name, {str(k): v for k, v in unknown.items()}, valid):
        keys = ", ".join(repr(k) for k in fix.old)
        what = "is an albumentations 1.x argument" if len(fix.old) == 1 else "are albumentations 1.x arguments"
        where.report(min(step.arg_lines.get(k, step.line) or 0 for k in fix.old) or step.line,
                     f"{step.name}: {keys} {what}; {fix.advice}")
        out.quiet.add(fix.new)
        for key in fix.old:
            unknown.pop(key, None)
        out.ok = False
    for key in unknown:
        hint = close_matches(str(key), list(valid))
        fix = f"did you mean {' or '.join(hint)}?" if hint else f"valid: {', '.join(valid)}"
        where.report(step.arg_lines.get(key, step.line), f"{step.name}: unknown argument {key!r}; {fix}")
        out.ok = False


def _construct(step: Step, entry, args: _Arguments, where: Where):
    """``entry.cls(**args.kwargs)``, or None after reporting why not. A warning the transform
    gives about itself is a problem too (albumentations would only print it)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            transform = entry.cls(**args.kwargs)
        except (ValueError, TypeError, OSError) as exc:
            for key, msg in _pydantic_messages(exc):
                if key not in args.quiet:
                    where.report(step.arg_lines.get(key, step.line), f"{step.name}: {msg}")
            return None
        except RecursionError:
            where.report(step.line, f"{step.name}: arguments nested too deeply")
            return None
    for warning in caught:
        # Only what the transform says about itself: a ResourceWarning from garbage
        # collection (say) can fire while we listen and is none of the recipe's business.
        if not issubclass(warning.category, (UserWarning, DeprecationWarning, FutureWarning)):
            continue
        text = " ".join(str(warning.message).split())
        if not registry_mod.INFORMATIONAL_WARNINGS.search(text):
            where.report(step.line, f"{step.name}: {text}")
            args.ok = False
    return transform
