"""Every name imported from our own packages, and every attribute read off one of our modules bound to a
name, exists (issue 16: modules were split and moved; a function-level import or ``alias.name`` of a
moved name fails only when that line runs, e.g. in a benchmark nobody ran)."""
from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("udfs", "connectors", "operators", "jobs", "collector", "intentflow", "models", "bench", "tests")


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def unresolved(path: Path) -> list[str]:
    """``file:line name`` of imports and module attribute reads in ``path`` that do not resolve.

    Only our packages (:data:`PACKAGES`) are checked; a module that cannot be imported at all is reported
    as such.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    where = path.relative_to(ROOT)
    problems: list[str] = []
    aliases: dict[str, str] = {}  # local name -> module of ours

    def load(module: str):
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            problems.append(f"{where}: cannot import {module} ({exc})")
            return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in PACKAGES and a.asname:
                    aliases[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] in PACKAGES:
            module = load(node.module)
            if module is None:
                continue
            for a in node.names:
                if a.name == "*":
                    continue
                full = f"{node.module}.{a.name}"
                if _is_module(full):
                    aliases[a.asname or a.name] = full
                elif not hasattr(module, a.name):
                    problems.append(f"{where}:{node.lineno} {full}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases \
                and isinstance(node.ctx, ast.Load):
            module = load(aliases[node.value.id])
            if module is not None and not hasattr(module, node.attr) \
                    and not _is_module(f"{module.__name__}.{node.attr}"):
                problems.append(f"{where}:{node.lineno} {aliases[node.value.id]}.{node.attr}")
    return problems


def test_every_import_of_our_modules_resolves():
    files = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py")) if "node_modules" not in p.parts]
    assert len(files) > 100
    problems = [problem for path in files for problem in unresolved(path)]
    assert problems == []


def test_a_moved_name_is_reported():
    """The check is not vacuous: a name that is not there, and an attribute a module lacks, are reported."""
    probe = ROOT / "tests" / "unit" / "_probe_imports_resolve.py"
    probe.write_text("from intentflow import stack as local_stack\nfrom udfs.rules import RuleEngine, NoSuchName\n\n\n"
                     "def f():\n    from collector.app import collector_settings, KafkaUnavailableX\n"
                     "    return local_stack.status(), local_stack.no_such_function()\n")
    try:
        found = unresolved(probe)
    finally:
        probe.unlink()
    assert [p.split(" ", 1)[1] for p in found] == ["udfs.rules.NoSuchName", "collector.app.KafkaUnavailableX",
                                                   "intentflow.stack.no_such_function"]
