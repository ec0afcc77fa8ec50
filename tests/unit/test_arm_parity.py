"""The browser SDK assigns experiment arms exactly as the job does (``armFor`` in web/sdk/intentflow.js vs
``udfs.experiments.arm_for``), so an edge-scoring page of a holdout visitor shows no provisional action."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from udfs.experiments import HOLDOUT, arm_for

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import { armFor } from './web/sdk/intentflow.js';
const cases = JSON.parse(process.argv[1]);
const out = [];
for (const [exp, anon, pct] of cases) out.push(await armFor(exp, anon, pct));
console.log(JSON.stringify(out));
"""


def test_browser_and_job_assign_the_same_arm():
    node = shutil.which("node")
    if node is None:
        from tests.conftest import skip_unless_ci
        skip_unless_ci("node not installed")
    cases = [[f"exp-{i % 3}", f"visitor-{i}", (10, 33.3, 50, 0)[i % 4]] for i in range(400)]
    proc = subprocess.run([node, "--input-type=module", "-e", SCRIPT, json.dumps(cases)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    browser = json.loads(proc.stdout)
    job = [arm_for(exp, anon, pct) for exp, anon, pct in cases]
    assert browser == job
    assert HOLDOUT in job
