"""Runner of the claim breakers: each break applied to a throwaway copy of HEAD, its row's test run there.

``python -m tests.claim_breakers [--only SUBSTR ...] [--skip SUBSTR ...] [--kind unit|integration|browser]
[--list] [--control] [--record] [--render] [--rows-out FILE] [--record-rows FILE ...]``

How a row is run:

1. once per invocation, the tree at ``HEAD`` is exported (``git archive HEAD``) into a temporary folder;
   ``.stack`` and ``web/node_modules`` are symlinked to this checkout's, the operators jar is copied;
2. the breaker's edits are applied there (each old text must occur exactly once);
3. a break under ``operators/java`` rebuilds the jar in the copy (``mvn -q -o package -DskipTests``), a break
   of ``web/sdk/intentflow.js`` rebuilds its script-tag bundle (``node web/sdk/build.mjs``);
4. the row's test runs alone in the copy with this interpreter (``PYTHONPATH=<copy>``, ``CI`` unset so a
   skip shows as a skip, ``INTENTFLOW_DATA_DIR`` pointing at this checkout's data folder);
5. the edited files (and a rebuilt jar or bundle) are put back before the next row.

The broken build's outcome must be ``failed`` (a failure or an error); ``passed`` means the test could
not see its claim break (a hollow test), ``skipped`` that it did not run, ``timeout`` that it did not end
within the limit. ``--control`` first runs the selected tests on the intact copy (they must pass), so a
failure on the broken build is known to come from the break. ``--record`` merges the outcomes into
docs/claims_breakers.json and regenerates the section of docs/claims.md made from it.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.claim_breakers import CLAIMS_TABLE, RESULTS_JSON, ROOT, Breaker, claim_rows, row_of

#: Longest run of one test on a broken build, s (the slowest claim tests take ~5 min on a quiet machine).
TIMEOUT_S = {"unit": 600, "integration": 1200, "browser": 1200}
JAR = Path("operators/java/target/intentflow-operators.jar")
SDK_SOURCE, SDK_BUNDLE = "web/sdk/intentflow.js", Path("web/sdk/intentflow.iife.js")
BEGIN, END = "<!-- claim-breakers:begin -->", "<!-- claim-breakers:end -->"


# ---------------------------------------------------------------------------------------------- the copy


def head_commit() -> str:
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def make_copy(into: Path) -> Path:
    """Export HEAD into ``into``; link the local stack and node packages, copy the operators jar."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD"], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    for link in (".stack", "web/node_modules"):
        source = (ROOT / link).resolve()
        if source.exists():
            (into / link).symlink_to(source)
    if (ROOT / JAR).exists():
        (into / JAR).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / JAR, into / JAR)
    return into


def _rebuild(copy: Path, breaker: Breaker) -> None:
    if any(f.startswith("operators/java/") for f in breaker.files):
        subprocess.run(["mvn", "-q", "-o", "package", "-DskipTests"], cwd=copy / "operators" / "java", check=True,
                       capture_output=True, timeout=600)
    if SDK_SOURCE in breaker.files:
        subprocess.run(["node", str(copy / "web" / "sdk" / "build.mjs")], cwd=copy, check=True, capture_output=True,
                       timeout=120)


def apply(copy: Path, breaker: Breaker) -> dict[Path, bytes]:
    """Apply the breaker's edits (and rebuild what depends on them); return the originals to restore."""
    saved: dict[Path, bytes] = {}
    for extra in (JAR, SDK_BUNDLE):
        if (copy / extra).exists():
            saved[copy / extra] = (copy / extra).read_bytes()
    for edit in breaker.edits:
        path = copy / edit.file
        saved.setdefault(path, path.read_bytes())
        text = path.read_text(encoding="utf-8")
        if text.count(edit.old) != 1:
            raise ValueError(f"{edit.file}: the old text occurs {text.count(edit.old)} times: {edit.old!r}")
        path.write_text(text.replace(edit.old, edit.new), encoding="utf-8")
    _rebuild(copy, breaker)
    return saved


def restore(saved: dict[Path, bytes]) -> None:
    for path, data in saved.items():
        path.write_bytes(data)


# ------------------------------------------------------------------------------------------------ a run


def _env(copy: Path) -> dict[str, str]:
    from tests.conftest import data_dir

    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(copy)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("INTENTFLOW_DATA_DIR", str(data_dir()))
    return env


def run_test(copy: Path, test: str, kind: str, timeout_s: float | None = None) -> dict:
    """Run one test node id in ``copy``: ``{"outcome", "seconds", "counts", "detail"}``.

    ``outcome``: ``failed`` (any failure or error), ``passed`` (all passed), ``skipped`` (none ran),
    ``timeout``. ``detail``: the first failure's message (or the skip reason), at most 300 characters.
    """
    with tempfile.TemporaryDirectory(prefix="claim-breaker-xml-") as tmp:
        xml = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", test, "-q", "-p", "no:cacheprovider", "-o", "junit_family=xunit1",
               "--junitxml", str(xml)]
        t0 = time.monotonic()
        try:
            proc = subprocess.run(cmd, cwd=copy, env=_env(copy), capture_output=True, text=True,
                                  timeout=timeout_s or TIMEOUT_S[kind])
        except subprocess.TimeoutExpired:
            return {"outcome": "timeout", "seconds": round(time.monotonic() - t0, 1), "counts": {}, "detail": ""}
        seconds = round(time.monotonic() - t0, 1)
        if not xml.exists():
            tail = (proc.stdout + proc.stderr)[-300:]
            return {"outcome": "failed", "seconds": seconds, "counts": {}, "detail": f"pytest exit {proc.returncode}: {tail}"}
        suite = ET.parse(xml).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
        detail = ""
        for case in suite.iter("testcase"):
            for tag in ("failure", "error", "skipped"):
                node = case.find(tag)
                if node is not None and not detail:
                    text = f"{node.get('message') or ''}\n{node.text or ''}"
                    # a failed node:test (TAP) run inside the test: name the failing JavaScript test
                    tap = [line.strip() for line in text.replace("\\n", "\n").splitlines()
                           if line.strip().startswith("not ok")]
                    detail = f"{case.get('name')}: {tap[0] if tap else (node.get('message') or text[:200])}"
        if counts["failures"] or counts["errors"]:
            outcome = "failed"
        elif counts["tests"] and counts["skipped"] == counts["tests"]:
            outcome = "skipped"
        elif counts["tests"]:
            outcome = "passed"
        else:
            outcome, detail = "failed", f"no test collected (pytest exit {proc.returncode})"
        return {"outcome": outcome, "seconds": seconds, "counts": counts, "detail": " ".join(detail.split())[:300]}


# ------------------------------------------------------------------------------------------- recording


def _row_key(row: dict) -> tuple[str, str]:
    return row["test"], row["claim"]


def merge(results: dict | None, new_rows: list[dict], commit: str) -> dict:
    """``results`` (the JSON) with ``new_rows`` replacing the rows of the same test and claim prefix."""
    rows = {(_row_key(r)): r for r in (results or {}).get("rows", [])}
    for row in new_rows:
        rows[_row_key(row)] = row
    order = {key: i for i, key in enumerate((t, c) for c, t in claim_rows())}

    def position(row: dict) -> int:
        return next((i for (t, c), i in order.items() if t == row["test"] and c.startswith(row["claim"])), 10**6)

    return {"about": "python -m tests.claim_breakers: each docs/claims.md row's test on a build with one deliberate "
                     "break of the product code (tests/claim_breakers/breakers.py); it must fail there",
            "updated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "commit": commit,
            "rows": sorted(rows.values(), key=position)}


def render_section(results: dict) -> str:
    """The generated section of docs/claims.md (between the markers) from the recorded JSON."""
    rows = results["rows"]
    by_outcome: dict[str, int] = {}
    for r in rows:
        by_outcome[r["outcome"]] = by_outcome.get(r["outcome"], 0) + 1
    n_rows = len(claim_rows())
    summary = ", ".join(f"{n} {o}" for o, n in sorted(by_outcome.items()))
    lines = [
        BEGIN,
        "## Seen failing on a deliberately broken build",
        "",
        "Generated from [claims_breakers.json](claims_breakers.json) by `python -m tests.claim_breakers --record`"
        " (do not edit). How: the tree at a commit is exported to a temporary folder (`git archive`); for each row"
        " one break of the product code, never of the test, is applied there"
        " ([tests/claim_breakers/breakers.py](../tests/claim_breakers/breakers.py): file, exact old text,"
        " replacement, why); a break in `operators/java` rebuilds the jar, one in the SDK its bundle; then the"
        " row's test runs alone on that build. It must fail there: `passed` would mean the test cannot see its"
        " claim break. `tests/unit/test_claim_breakers.py` checks that every row has a breaker and that every"
        " breaker's old text still occurs exactly once.",
        "",
        f"Rows run: {len(rows)} of {n_rows}; broken-build outcomes: {summary}. `intact`: the same test on the"
        " unbroken copy of the same run (`--control`; `-` when not run).",
        "",
        "| # | test | break | intact | broken build | s | run |",
        "|---|---|---|---|---|---|---|",
    ]
    table = claim_rows()
    for r in rows:
        number = next((i + 1 for i, (c, t) in enumerate(table) if t == r["test"] and c.startswith(r["claim"])), "?")
        name = r["test"].split("::")[1]
        files = ", ".join(f"`{f}`" for f in r["files"])
        lines.append(f"| {number} | {name} | {files}: {r['why']} | {r.get('intact', '-')} | **{r['outcome']}** | "
                     f"{r['seconds']:.0f} | "
                     f"{r['date']} `{r['commit'][:8]}` |")
    lines.append(END)
    return "\n".join(lines) + "\n"


def section_of(text: str) -> str | None:
    """The generated section of ``text`` (markers included, with its final newline), or None."""
    start = text.find(BEGIN)
    if start < 0:
        return None
    end = text.index(END, start) + len(END)
    return text[start:end] + "\n"


def write_section(results: dict) -> None:
    text = CLAIMS_TABLE.read_text(encoding="utf-8")
    section = render_section(results)
    old = section_of(text)
    text = text.replace(old, section) if old else text.rstrip("\n") + "\n\n" + section
    CLAIMS_TABLE.write_text(text, encoding="utf-8")


# ------------------------------------------------------------------------------------------------- CLI


def select(breakers: tuple[Breaker, ...], only: list[str], kinds: list[str], skip: list[str] = ()) -> list[Breaker]:
    out = [b for b in breakers if (not only or any(s in b.test or s in b.claim for s in only))]
    out = [b for b in out if not any(s in b.test or s in b.claim for s in skip)]
    return [b for b in out if not kinds or b.kind in kinds]


def main(argv: list[str] | None = None) -> int:
    from tests.claim_breakers.breakers import BREAKERS

    parser = argparse.ArgumentParser(prog="python -m tests.claim_breakers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", default=[], help="rows whose test id or claim contains this")
    parser.add_argument("--skip", action="append", default=[], help="leave out rows whose test id or claim contains this")
    parser.add_argument("--kind", action="append", default=[], choices=["unit", "integration", "browser"])
    parser.add_argument("--list", action="store_true", help="list the selected breakers and exit")
    parser.add_argument("--control", action="store_true", help="run each selected test on the intact copy first")
    parser.add_argument("--record", action="store_true", help="merge into docs/claims_breakers.json, regenerate docs/claims.md's section")
    parser.add_argument("--render", action="store_true", help="only regenerate docs/claims.md's section from the JSON")
    parser.add_argument("--timeout-s", type=float, default=None, help="limit per test run (default by kind)")
    parser.add_argument("--rows-out", type=Path, default=None,
                        help="also write this run's rows to a JSON file (for runs in parallel, recorded later)")
    parser.add_argument("--record-rows", type=Path, nargs="+", default=None,
                        help="record the rows of these --rows-out files (no run)")
    args = parser.parse_args(argv)

    if args.record_rows:
        new_rows = [row for path in args.record_rows for row in json.loads(path.read_text(encoding="utf-8"))]
        _record(new_rows, head_commit())
        return 0
    if args.render:
        write_section(json.loads(RESULTS_JSON.read_text(encoding="utf-8")))
        return 0
    chosen = select(BREAKERS, args.only, args.kind, args.skip)
    rows = claim_rows()
    if args.list:
        for b in chosen:
            print(f"{row_of(b, rows)[0] + 1:>3} {b.kind:<11} {b.test}\n    {', '.join(b.files)}: {b.why}")
        print(f"{len(chosen)} of {len(BREAKERS)} breakers")
        return 0
    commit = head_commit()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    if dirty:
        print(f"note: uncommitted changes are not in the copy (it is HEAD {commit[:8]})", flush=True)
    new_rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="claim-breakers-") as tmp:
        copy = make_copy(Path(tmp))
        control: dict[str, dict] = {}
        if args.control:
            for test in dict.fromkeys(b.test for b in chosen):
                control[test] = run_test(copy, test, test.split("/")[1], args.timeout_s)
                print(f"intact  {control[test]['outcome']:<8} {control[test]['seconds']:>6.1f} s  {test}", flush=True)
        for b in chosen:
            saved = {}
            try:
                saved = apply(copy, b)
                res = run_test(copy, b.test, b.kind, args.timeout_s)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired, ValueError) as exc:
                res = {"outcome": "not_run", "seconds": 0.0, "counts": {}, "detail": f"break not applied: {exc}"[:300]}
            finally:
                restore(saved)
            if b.test in control:
                res["intact"] = control[b.test]["outcome"]
            print(f"broken  {res['outcome']:<8} {res['seconds']:>6.1f} s  {b.test}  [{b.claim}]\n"
                  f"        {res['detail'][:160]}", flush=True)
            new_rows.append({"test": b.test, "claim": b.claim, "kind": b.kind, "files": b.files, "why": b.why,
                             **res, "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"), "commit": commit})
    failed = sum(r["outcome"] == "failed" for r in new_rows)
    print(f"{len(new_rows)} rows run on their broken build: {failed} failed as they must; "
          f"{len(new_rows) - failed} did not: {[r['test'] for r in new_rows if r['outcome'] != 'failed']}")
    if args.rows_out:
        args.rows_out.write_text(json.dumps(new_rows, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.record:
        _record(new_rows, commit)
    return 0 if failed == len(new_rows) else 1


def _record(new_rows: list[dict], commit: str) -> None:
    old = json.loads(RESULTS_JSON.read_text(encoding="utf-8")) if RESULTS_JSON.exists() else None
    results = merge(old, new_rows, commit)
    RESULTS_JSON.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    write_section(results)
    print(f"recorded in {RESULTS_JSON.relative_to(ROOT)} and {CLAIMS_TABLE.relative_to(ROOT)}")
