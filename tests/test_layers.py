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
