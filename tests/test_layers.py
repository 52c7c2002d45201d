"""Nothing imports upward: runtimes <- lite <- converters <- calibration <- apps. Every import of every module
is read from its source (ast, no import run), in functions too, so a lazy import up a layer is caught."""
from __future__ import annotations

import ast

from tests.conftest import REPO

LAYERS = ("runtimes", "lite", "converters", "calibration", "apps")  # lowest first


def imported_packages(source: str, package: str) -> list[tuple[int, str]]:
    """(line, cmlite package) of each import of one of ours in a module of `package`; a bare old name (`import
    runtimes`, `from apps.x import y`) counts as '<bare NAME>'."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 1:  # from .x: inside the package itself
                continue
            if node.level > 1:  # from ..x: a sibling package, under cmlite
                names = [f"cmlite.{node.module}" if node.module else f"cmlite.{a.name}" for a in node.names]
            elif node.module == "cmlite":
                names = [f"cmlite.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "cmlite" and len(parts) > 1:
                found.append((node.lineno, parts[1]))
            elif parts[0] in LAYERS:
                found.append((node.lineno, f"<bare {parts[0]}>"))
    return found


def violations(source: str, package: str, where: str) -> list[str]:
    out = []
    for line, target in imported_packages(source, package):
        if target.startswith("<bare"):
            out.append(f"{where}:{line}: imports {target[6:-1]} by its bare name (use cmlite.{target[6:-1]})")
        elif target in LAYERS and LAYERS.index(target) > LAYERS.index(package):
            out.append(f"{where}:{line}: {package} imports {target}, a layer above it")
    return out


def test_no_module_imports_up_a_layer():
    found = []
    for package in LAYERS:
        for path in sorted((REPO / package).rglob("*.py")):
            found += violations(path.read_text(), package, str(path.relative_to(REPO)))
    assert not found, "\n".join(found)
    assert sum(1 for p in LAYERS for _ in (REPO / p).rglob("*.py")) > 80  # it read the whole package


def test_the_walker_catches_what_it_guards_against():
    """What calibration/ did before: read images and evaluate through apps/ (also lazily, in a function)."""
    old = "from apps.images import read_bgr\n"
    lazy = "def f():\n    from cmlite.apps.evaluate import evaluate\n"
    sibling = "from ..apps import camera\n"
    assert violations(old, "calibration", "c.py") == ["c.py:1: imports apps by its bare name (use cmlite.apps)"]
    assert violations(lazy, "calibration", "c.py") == ["c.py:2: calibration imports apps, a layer above it"]
    assert violations(sibling, "runtimes", "r.py") == ["r.py:1: runtimes imports apps, a layer above it"]
    assert violations("from cmlite import lite, apps\n", "converters", "v.py") == [
        "v.py:1: converters imports apps, a layer above it"]
    assert violations("from cmlite.runtimes.images import read_bgr\nfrom . import x\n", "calibration", "c.py") == []


def _modules() -> dict[str, object]:
    """Every module of the package, by its dotted name under cmlite ("apps.camera.loop"; a package's __init__ is
    the package's name)."""
    out = {}
    for layer in LAYERS:
        for path in (REPO / layer).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path, modules: dict) -> list[tuple[str, str, int]]:
    """(module imported, name taken from it, line) for each import of ours, in functions too."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            elif (node.module or "").startswith("cmlite."):
                base = node.module[len("cmlite."):]
            else:
                continue
            for a in node.names:
                target = f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                out.append((target, a.name, node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name[len("cmlite."):], "", node.lineno) for a in node.names if a.name.startswith("cmlite.")]
    return [t for t in out if t[0] in modules and t[0] != name]


def circles(edges: dict[str, set]) -> list[list[str]]:
    """The groups of modules that import one another in a loop (Tarjan's strongly connected components)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_no_circle_of_imports_and_no_private_name_across_files():
    """A module never imports, at the top or inside a function, one that imports it back (before: the overlap and
    throughput run modes did, each loading the other in a function); nor a name another module keeps private."""
    modules = _modules()
    edges = {name: set() for name in modules}
    private = []
    for name, path in modules.items():
        for target, taken, line in _imports(name, path, modules):
            edges[name].add(target)
            if taken.startswith("_") and not taken.startswith("__"):
                private.append(f"{path.relative_to(REPO)}:{line}: {taken} from {target}")
    assert not circles(edges), circles(edges)
    assert not private, "\n".join(private)
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the finder finds one
