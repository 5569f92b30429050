"""The package's imports flow one way: no circle, counting the imports made only
for type checking (a circle through `if TYPE_CHECKING:` is still two modules that
each need the other to be understood). See docs/architecture.md."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "server" / "actions_server"
ROOT = "actions_server"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `path` imports, wherever in the file (functions,
    TYPE_CHECKING blocks); `from x import y` counts `x.y` when that is a module."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            # `from x import m` is module x.m when there is one, else a name of x.
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            if target in modules and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imported(p, modules) for p in paths}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_walker_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_package_has_no_import_circle() -> None:
    assert cycles(graph()) == []


DOC = PACKAGE.parents[1] / "docs" / "architecture.md"


def layers() -> tuple[dict[str, str], dict[str, set[str]]]:
    """From docs/architecture.md: module prefix → layer, and layer → layers it may import."""
    text = DOC.read_text()
    table = text.split("<!-- layers -->", 1)[1].strip().splitlines()
    placed: dict[str, str] = {}
    allowed: dict[str, set[str]] = {}
    order: list[str] = []
    for row in table[2:]:
        if not row.startswith("|"):
            break
        layer, modules, may = (cell.strip() for cell in row.strip("|").split("|"))
        order.append(layer)
        for name in modules.split(","):
            name = name.strip().split()[0].strip("`")
            placed[name if name == ROOT else f"{ROOT}.{name}"] = layer
        below = set(order) if may == "every layer" else {m.strip() for m in may.split(",") if m}
        allowed[layer] = below | {layer}
    return placed, allowed


def layer_of(module: str, placed: dict[str, str]) -> str:
    # The root is the public API module only; it does not place the package's modules.
    candidates = [p for p in placed if module == p or (p != ROOT and module.startswith(p + "."))]
    assert candidates, f"{module} is in no layer of docs/architecture.md"
    return placed[max(candidates, key=len)]


def test_every_import_follows_the_documented_layers() -> None:
    placed, allowed = layers()
    wrong = []
    for module, targets in graph().items():
        mine = layer_of(module, placed)
        for target in targets:
            theirs = layer_of(target, placed)
            if theirs not in allowed[mine]:
                wrong.append(f"{module} ({mine}) imports {target} ({theirs})")
    assert wrong == []
