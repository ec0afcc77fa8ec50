"""The feature definition for in-browser (edge) scoring, generated from the one Python definition.

``web/sdk/edge-spec.v1.json`` is what the SDK's edge module (``web/sdk/edge.js``) reads: the ordered
feature list of :data:`udfs.features.FEATURES` (name, unit, dtype, definition), the noise-filter
parameters of :data:`udfs.noise.DEFAULT_NOISE_CONFIG` and the constants of :mod:`udfs.session` that the
computation needs (trailing click window, slow network classes, table bounds, behavioral types). Nothing
in it is written by hand: :func:`edge_spec` reads those modules, and ``tests/unit/test_edge_spec.py``
fails when the committed file differs from what this module generates.

Regenerate after changing any of those sources::

    python -m udfs.edge_spec            # writes web/sdk/edge-spec.v1.json
    python -m udfs.edge_spec --check    # exit 1 when the committed file is stale
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from udfs import session
from udfs.features import FEATURE_DTYPE, FEATURES
from udfs.noise import DEFAULT_NOISE_CONFIG

#: Where the SDK reads the spec from (served by the collector as ``/sdk/edge-spec.v1.json``).
SPEC_PATH = Path(__file__).resolve().parents[1] / "web" / "sdk" / "edge-spec.v1.json"

#: Version of the spec's layout (bump when a key is renamed or removed; the SDK checks it).
SPEC_VERSION = 1


def edge_spec() -> dict[str, Any]:
    """The spec as a JSON-ready dict.

    Keys: ``spec_version`` (int), ``generated_from`` (source files), ``feature_dtype`` (``"float32"``),
    ``features`` (list of ``{name, unit, dtype, definition}`` in vector order, length ``N_FEATURES``),
    ``noise`` (every field of :class:`udfs.noise.NoiseConfig` with its default value),
    ``session`` (``click_velocity_window_ms``, ``slow_effective_types`` sorted, ``max_tracked_keys``,
    ``behavioral_types`` sorted, ``default_page_bounce_rate``, ``default_page_exit_rate``).
    """
    return {
        "spec_version": SPEC_VERSION,
        "generated_from": "udfs/features.py (FEATURES), udfs/noise.py (NoiseConfig defaults), udfs/session.py "
                          "(constants) by udfs/edge_spec.py: do not edit, regenerate with `python -m udfs.edge_spec`",
        "feature_dtype": FEATURE_DTYPE.__name__,
        "features": [{"name": f.name, "unit": f.unit, "dtype": f.dtype, "definition": f.definition}
                     for f in FEATURES],
        "noise": dataclasses.asdict(DEFAULT_NOISE_CONFIG),
        "session": {
            "click_velocity_window_ms": session.CLICK_VELOCITY_WINDOW_MS,
            "slow_effective_types": sorted(session.SLOW_EFFECTIVE_TYPES),
            "max_tracked_keys": session.MAX_TRACKED_KEYS,
            "behavioral_types": sorted(session._BEHAVIORAL_TYPES),  # noqa: SLF001 - the one definition
            "default_page_bounce_rate": session.DEFAULT_PAGE_BOUNCE_RATE,
            "default_page_exit_rate": session.DEFAULT_PAGE_EXIT_RATE,
        },
    }


def render() -> str:
    """The file's text: :func:`edge_spec` as indented JSON with a final newline (stable key order)."""
    return json.dumps(edge_spec(), indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write :data:`SPEC_PATH`, or with ``--check`` return 1 (and say so) when it is stale."""
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in argv:
        current = SPEC_PATH.read_text(encoding="utf-8") if SPEC_PATH.exists() else ""
        if current != text:
            print(f"{SPEC_PATH} is stale: run `python -m udfs.edge_spec`", file=sys.stderr)
            return 1
        print(f"{SPEC_PATH} is up to date")
        return 0
    SPEC_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {SPEC_PATH} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
