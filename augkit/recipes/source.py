"""Reading a recipe: regular files only, of bounded size, as YAML of bounded depth and
expansion, whose mappings and lists remember the line of every key and item.

A recipe is a few hundred lines. What is not one is refused before it can cost time or
memory: a named pipe or device (reading it would wait forever), a file over
:data:`MAX_RECIPE_BYTES`, YAML nested deeper than :data:`MAX_YAML_DEPTH` (Python's
recursion would give out first), and aliases that expand to more than
:data:`MAX_YAML_VALUES` values (2.5 KB of nested ``&a [*b, *b, ...]`` anchors, "billion
laughs", expand to 10^9). Each refusal is one line naming the limit.
"""

from __future__ import annotations

import os
import stat
from typing import Any

import yaml

MAX_RECIPE_BYTES = 1 << 20  # 1 MiB: some 30,000 lines
MAX_YAML_DEPTH = 128  # nested lists and mappings; a composition takes three, and 32 may nest
MAX_YAML_VALUES = 50_000  # scalars, lists and mappings, aliases expanded; a recipe has hundreds


class FileRefused(ValueError):
    """A path that is not a regular file of acceptable size; the message says what it is."""


_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _kind(mode: int) -> str | None:
    """What a non-regular file is, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n:,} bytes"


def read_regular_file(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``.

    Raises :class:`FileRefused` for a folder, pipe, socket or device (checked before
    opening, and again on the open file, which is opened without waiting for a writer) and
    for a file that is larger; OSError (FileNotFoundError...) as ``open`` would."""
    kind = _kind(os.stat(path).st_mode)
    if kind:
        raise FileRefused(f"is {kind}, not a regular file")
    # O_NONBLOCK: had a pipe replaced the file since the stat, opening it does not block.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as f:
        kind = _kind(os.fstat(f.fileno()).st_mode)
        if kind:
            raise FileRefused(f"is {kind}, not a regular file")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileRefused(f"is larger than {_size(max_bytes)}")
    return data


# --- YAML with line numbers, within limits ------------------------------------------------


class LineDict(dict):
    """A mapping from the recipe, with the line of the mapping and of each key."""

    line: int | None = None
    key_lines: dict[Any, int]


class LineList(list):
    """A list from the recipe, with the line of the list and of each item."""

    line: int | None = None
    item_lines: list[int]


class LimitExceeded(yaml.MarkedYAMLError):
    """YAML past one of this module's limits; ``problem`` names the limit."""


class _Bounded:
    """Composes like PyYAML's Composer, refusing nesting past MAX_YAML_DEPTH and more than
    MAX_YAML_VALUES values (aliases expanded) as soon as they happen, before anything is
    built from the document."""

    def _start_bounds(self) -> None:
        self._depth = 0
        self._total = 0  # values composed so far, aliases counted at their full size
        self._aliased = False
        self._values: dict[int, int] = {}  # id(node) -> values it holds, aliases expanded

    def _count(self, n: int, mark) -> None:
        self._total += n
        if self._total > MAX_YAML_VALUES:
            through = " (through aliases: *name repeats what &name marks)" if self._aliased else ""
            raise LimitExceeded(None, None, f"more than {MAX_YAML_VALUES:,} values{through}; a recipe has hundreds",
                                mark)

    def compose_node(self, parent, index):
        mark = self.peek_event().start_mark
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            if id(node) not in self._values:  # still being composed: it contains itself
                raise LimitExceeded(None, None, "an alias refers to a value that contains it (a recursive alias)",
                                    mark)
            self._aliased = True
            self._count(self._values[id(node)], mark)
            return node
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise LimitExceeded(None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", mark)
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if isinstance(node, yaml.SequenceNode):
            held = 1 + sum(self._values[id(child)] for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            held = 1 + sum(self._values[id(k)] + self._values[id(v)] for k, v in node.value)
        else:
            held = 1
        self._values[id(node)] = held
        self._count(1, mark)  # its children counted themselves
        return node


class _LineLoader(_Bounded, yaml.SafeLoader):
    """SafeLoader, bounded, whose mappings and lists remember the line of every key and item."""

    def __init__(self, stream):
        super().__init__(stream)
        self._start_bounds()


if getattr(yaml, "__with_libyaml__", False):

    class _FastLineLoader(_Bounded, yaml.composer.Composer, yaml.cyaml.CParser, yaml.constructor.SafeConstructor,
                          yaml.resolver.Resolver):
        """The same, scanning and parsing with libyaml, several times faster (benchmarks/RESULTS.md,
        "Figures behind code comments"); composing stays in Python, where the bounds are."""

        def __init__(self, stream):
            yaml.cyaml.CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            self._start_bounds()

    _LOADERS: tuple[type, ...] = (_FastLineLoader, _LineLoader)
else:  # pragma: no cover - PyYAML without libyaml
    _LOADERS = (_LineLoader,)


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in result
        except TypeError:  # a list or mapping as a key (`? [a]`): unhashable
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a name, not a list or mapping", key_node.start_mark
            ) from None
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (the second one would silently win)", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


for _loader in _LOADERS:
    _loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    _loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


class YAMLProblem(ValueError):
    """Text that is not YAML, or YAML past a limit: ``line`` (or None) and one-line ``problem``."""

    def __init__(self, line: int | None, problem: str):
        super().__init__(problem)
        self.line = line
        self.problem = problem


def parse_yaml(text: str) -> Any:
    """The document in ``text``, mappings and lists as LineDict and LineList.

    Raises :class:`YAMLProblem` for invalid YAML and for YAML past this module's limits."""
    try:
        return yaml.load(text, Loader=_LOADERS[0])  # noqa: S506 - SafeLoader's constructor, bounded
    except LimitExceeded as exc:
        raise YAMLProblem(exc.problem_mark.line + 1, exc.problem) from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        unclosed = "<stream end>" in (exc.problem or "") or (exc.context or "").startswith("while parsing a flow")
        if exc.context_mark and unclosed:
            line = exc.context_mark.line + 1  # an unclosed bracket: where it opened, not past the end
        problem = " ".join(f"{exc.context or ''} {exc.problem or ''}".split())
        raise YAMLProblem(line, f"not valid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise YAMLProblem(None, f"not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:  # a limit above should come first; this is the backstop
        raise YAMLProblem(None, f"nested too deeply (the limit is {MAX_YAML_DEPTH} levels)") from None


def line_of(container: Any, key: Any = None) -> int | None:
    """The line of ``container``'s ``key``, else of ``container``, else None (a plain dict)."""
    if key is not None and isinstance(container, LineDict):
        return container.key_lines.get(key, container.line)
    return getattr(container, "line", None)


def check_data_bounds(data: Any) -> str | None:
    """For a recipe given as Python data rather than text: what is past the limits a
    recipe file has (depth, values) or a list or dict that contains itself, else None."""
    memo: dict[int, int] = {}
    # Iterative post-order walk: a deep or self-containing structure must not recurse.
    stack: list[tuple[Any, int, bool]] = [(data, 1, False)]
    open_ids: set[int] = set()
    while stack:
        node, depth, done = stack.pop()
        if not isinstance(node, (dict, list, tuple)):
            continue
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else list(node)
        key = id(node)
        if done:
            open_ids.discard(key)
            memo[key] = 1 + sum(memo.get(id(c), 1) for c in children)
            if memo[key] > MAX_YAML_VALUES:
                return f"holds more than {MAX_YAML_VALUES:,} values"
            continue
        if key in open_ids:
            return "contains itself (a list or dict inside itself)"
        if key in memo:
            continue
        if depth > MAX_YAML_DEPTH:
            return f"is nested deeper than {MAX_YAML_DEPTH} levels"
        open_ids.add(key)
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in children)
    return None
