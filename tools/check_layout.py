"""Check augkit's layout against the layers written in docs/architecture.md.

    python tools/check_layout.py            # exit 0, or one line per problem and exit 1

Fails on:
- an import circle between augkit modules (function-level imports count: they run too;
  imports under ``if TYPE_CHECKING:`` never run and do not count for circles);
- an import from a layer above the importing module's layer (type-only imports included:
  a lower layer must not even name a higher one's types);
- a module over MAX_MODULE_LINES lines, or a function over MAX_FUNCTION_LINES lines, without
  a written reason: a line starting ``Long because`` in its docstring.

The layers are read from the table under "## Layers" in docs/architecture.md (bottom to top,
one row per layer, the second column listing folders ``augkit/x/`` and modules
``augkit/y.py`` in backticks), so the document and the check cannot drift apart.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
REASON = re.compile(r"^\s*Long because", re.MULTILINE)


@dataclass
class Module:
    name: str  # augkit.stages.batches
    path: Path
    tree: ast.Module
    imports: list[tuple[str, int, bool]] = field(default_factory=list)  # (module, line, runs)


def read_layers(doc: Path) -> list[tuple[str, list[str]]]:
    """[(layer, [prefixes])] bottom to top, from the '## Layers' table of the document."""
    text = doc.read_text(encoding="utf-8")
    section = re.search(r"^## Layers\b(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    if not section:
        raise SystemExit(f"{doc}: no '## Layers' section; add the layer table (bottom to top)")
    layers = []
    for row in section.group(1).splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) < 2 or not row.lstrip().startswith("|") or set(cells[0]) <= set("-: "):
            continue
        paths = re.findall(r"`(augkit/[^`]*)`", cells[1])
        if paths:
            layers.append((cells[0], [_module_prefix(p) for p in paths]))
    if not layers:
        raise SystemExit(f"{doc}: the '## Layers' table names no `augkit/...` paths")
    return layers


def _module_prefix(path: str) -> str:
    """`augkit/core/` -> 'augkit.core.' (a package and everything in it); `augkit/torch.py` -> 'augkit.torch'."""
    if path.endswith("/"):
        return path.rstrip("/").replace("/", ".") + "."
    return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def layer_of(name: str, layers: list[tuple[str, list[str]]]) -> int | None:
    for i, (_, prefixes) in enumerate(layers):
        for prefix in prefixes:
            if name == prefix or (prefix.endswith(".") and (name + ".").startswith(prefix)):
                return i
    return None


def load_modules(package: Path) -> dict[str, Module]:
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = Module(name, path, ast.parse(path.read_text(encoding="utf-8"), str(path)))
    for module in modules.values():
        module.imports = list(_imports(module, modules))
    return modules


def _imports(module: Module, modules: dict[str, Module]):
    """(imported augkit module, line, runs at import or call time) for each import statement."""
    type_only = set()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            type_only.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    for node in ast.walk(module.tree):
        runs = id(node) not in type_only
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "augkit":
                    yield _known(alias.name, modules), node.lineno, runs
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module)
            if base.split(".")[0] != "augkit":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield (sub if sub in modules else _known(base, modules)), node.lineno, runs


def _absolute(node: ast.ImportFrom, module: Module) -> str:
    if not node.level:
        return node.module or ""
    package = module.name.split(".")
    if module.path.name != "__init__.py":
        package = package[:-1]
    package = package[: len(package) - node.level + 1]
    return ".".join(package + ([node.module] if node.module else []))


def _known(name: str, modules: dict[str, Module]) -> str:
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def circles(modules: dict[str, Module]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), over imports that run."""
    graph = {m.name: sorted({i for i, _, runs in m.imports if runs and i in modules and i != m.name})
             for m in modules.values()}
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(1000, 10 * len(graph)))
    for v in graph:
        if v not in index:
            visit(v)
    return found


def problems(root: Path) -> list[str]:
    package, doc = root / "augkit", root / "docs" / "architecture.md"
    layers = read_layers(doc)
    modules = load_modules(package)
    found = []
    for m in modules.values():
        where = m.path.relative_to(root)
        mine = layer_of(m.name, layers)
        if mine is None:
            found.append(f"{where}: in no layer of {doc.relative_to(root)}; add it to the '## Layers' table")
            continue
        for imported, line, _ in m.imports:
            theirs = layer_of(imported, layers)
            if theirs is not None and theirs > mine:
                found.append(f"{where}:{line}: imports {imported} ({layers[theirs][0]}) from the lower layer "
                             f"{layers[mine][0]}; move what both need down, or the caller up")
        found.extend(_too_long(m, where))
    found = list(dict.fromkeys(found))  # one line per import statement, not per imported name
    for component in circles(modules):
        found.append(f"import circle: {' -> '.join(component)}; move what they share into one module both import")
    return found


def _too_long(m: Module, where: Path) -> list[str]:
    found = []
    lines = len(m.path.read_text(encoding="utf-8").splitlines())
    if lines > MAX_MODULE_LINES and not REASON.search(ast.get_docstring(m.tree) or ""):
        found.append(f"{where}: {lines} lines (limit {MAX_MODULE_LINES}); split it by job, "
                     "or write 'Long because ...' in its docstring")
    for node in ast.walk(m.tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES and not REASON.search(ast.get_docstring(node) or ""):
                found.append(f"{where}:{node.lineno}: {node.name}() is {length} lines (limit {MAX_FUNCTION_LINES}); "
                             "split it, or write 'Long because ...' in its docstring")
    return found


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    found = problems(root)
    for line in found:
        print(line)
    if found:
        print(f"check_layout: {len(found)} problem{'s' if len(found) != 1 else ''}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
