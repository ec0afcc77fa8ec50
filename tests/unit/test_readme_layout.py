"""README.md's "An event's path, step by step" table cannot rot (issue 16): every ``file::function`` in it
names a file of this checkout that defines that function, class or method, the path runs from
``POST /v1/events`` to ``GET /v1/decision``, and no file comes back after the reader left it."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEADING = "### An event's path, step by step"
#: ``path/to/file.ext::Name`` or ``path/to/file.ext::Class.method`` inside backticks.
ENTRY = re.compile(r"`([\w./-]+\.(?:py|java|js))::([A-Za-z_][\w.]*)`")


def path_table(readme_text: str) -> list[str]:
    """The rows (markdown lines starting with ``|``) of the table under :data:`HEADING`, header excluded.

    Raises:
        AssertionError: no such heading, or no table under it.
    """
    assert HEADING in readme_text, f"README.md has no section {HEADING!r}"
    rows = []
    for line in readme_text.split(HEADING, 1)[1].splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            break
    assert len(rows) > 2, "no table under the heading"
    return rows[2:]  # header and |---| line


def _python_defines(text: str, dotted: str) -> bool:
    """True when the module source defines ``dotted`` (a function or class, or ``Class.method``)."""
    scope: list[ast.stmt] = ast.parse(text).body
    for part in dotted.split("."):
        found = next((node for node in scope if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                   ast.ClassDef)) and node.name == part), None)
        if found is None:
            return False
        scope = found.body if isinstance(found, ast.ClassDef) else []
    return True


def _class_body(text: str, name: str, keyword: str = "class") -> str | None:
    """The source after ``class Name`` up to the next top-level class (Java, JavaScript), or None."""
    match = re.search(rf"\b{keyword}\s+{re.escape(name)}\b", text)
    if match is None:
        return None
    rest = text[match.end():]
    following = re.search(r"^(?:export\s+|public\s+|final\s+)*class\s", rest, re.M)
    return rest[: following.start()] if following else rest


def _java_defines(text: str, dotted: str) -> bool:
    """``Class`` or ``Class.method``: a method is a declaration ``<type> method(`` in the class's body."""
    cls, _, method = dotted.partition(".")
    body = _class_body(text, cls)
    if body is None:
        return False
    return not method or re.search(rf"^\s+(?:[\w<>\[\],]+\s+)+{re.escape(method)}\s*\(", body, re.M) is not None


def _js_defines(text: str, dotted: str) -> bool:
    """``name`` (a function or class) or ``Class.method`` (``method(...) {`` in the class's body)."""
    cls, _, method = dotted.partition(".")
    if not method:
        declaration = rf"^(?:export\s+)?(?:async\s+)?(?:function|class)\s+{re.escape(cls)}\b"
        return re.search(declaration, text, re.M) is not None
    body = _class_body(text, cls)
    declaration = rf"^\s+(?:async\s+)?{re.escape(method)}\s*\(.*\)\s*\{{\s*$"
    return body is not None and re.search(declaration, body, re.M) is not None


def missing_entries(rows: list[str], root: Path = ROOT) -> list[str]:
    """``file::name`` entries of ``rows`` whose file does not exist or does not define ``name``."""
    check = {".py": _python_defines, ".java": _java_defines, ".js": _js_defines}
    missing = []
    for row in rows:
        for file, name in ENTRY.findall(row):
            path = root / file
            if not path.is_file() or not check[path.suffix](path.read_text(encoding="utf-8"), name):
                missing.append(f"{file}::{name}")
    return missing


def files_reopened(rows: list[str]) -> list[str]:
    """Files that appear again after another file came between (a reader would open them twice)."""
    order: list[str] = []
    for row in rows:
        for file, _ in ENTRY.findall(row):
            if not order or order[-1] != file:
                order.append(file)
    return sorted({f for i, f in enumerate(order) if f in order[:i]})


def test_every_entry_of_the_readme_table_exists():
    rows = path_table((ROOT / "README.md").read_text(encoding="utf-8"))
    entries = [e for row in rows for e in ENTRY.findall(row)]
    assert len(entries) >= 20, entries
    assert missing_entries(rows) == []


def test_the_path_runs_from_post_events_to_get_decision_without_reopening_a_file():
    rows = path_table((ROOT / "README.md").read_text(encoding="utf-8"))
    every_row_has_a_place = [r for r in rows if not ENTRY.search(r)]
    assert every_row_has_a_place == []
    first_server_row = next(r for r in rows if "collector/" in r)
    assert "POST /v1/events" in first_server_row and "GET /v1/decision" in rows[-1]
    files = [f for row in rows for f, _ in ENTRY.findall(row)]
    for step in ("collector/producer.py", "jobs/personalization.py", "SessionShardMicroBatcher.java",
                 "operators/personalization.py", "udfs/decide.py", "udfs/scoring.py", "udfs/rule_engine.py",
                 "connectors/redis_store.py", "collector/decision.py"):
        assert any(f.endswith(step) for f in files), step
    assert files_reopened(rows) == []


def test_the_checks_find_what_is_not_there(tmp_path):
    """The checker is not vacuous: a missing file, function, method, Java method and JS method are reported,
    and a file that comes back is named."""
    (tmp_path / "m.py").write_text("class A:\n    def f(self):\n        pass\n\ndef g():\n    pass\n")
    (tmp_path / "B.java").write_text("public class B {\n    public void run(int x) {}\n"
                                     "    private void flush() {}\n}\n")
    (tmp_path / "c.js").write_text("export class C {\n  track(type, tMs = nowMs()) {\n  }\n  async post(b) {\n  }\n}\n"
                                   "export function h() {}\n")
    good = ["| 1 | x | `m.py::A.f`, `m.py::g`, `B.java::B.run`, `B.java::B.flush`, `c.js::C.track`, "
            "`c.js::C.post`, `c.js::h` |"]
    assert missing_entries(good, tmp_path) == []
    bad = ["| 1 | x | `m.py::A.g`, `m.py::f`, `none.py::g`, `B.java::B.stop`, `B.java::Z`, `c.js::C.flush`, "
           "`c.js::D.track` |"]
    assert missing_entries(bad, tmp_path) == ["m.py::A.g", "m.py::f", "none.py::g", "B.java::B.stop", "B.java::Z",
                                              "c.js::C.flush", "c.js::D.track"]
    assert files_reopened(["| `m.py::g` |", "| `c.js::h` |", "| `m.py::A.f` |"]) == ["m.py"]
    assert files_reopened(["| `m.py::g`, `m.py::A.f` |", "| `c.js::h` |"]) == []
