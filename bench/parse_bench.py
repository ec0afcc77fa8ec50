"""µs per event of the hot-path parser ``udfs.contract.parse_event`` (and of the collector's normalizer).

Usage: ``.venv/bin/python bench/parse_bench.py [--n 20000]``. Prints one line per measured path:

- ``parse_event``: one Kafka message value (canonical event, ~0.8 KB of JSON) -> validated dict, the
  Flink job's per-event cost (msgspec Structs made from the contract, udfs/contract_fast.py), and beside it the pydantic path
  it replaced (``EVENT_ADAPTER.validate_json`` + ``model_dump``, still the path of what that decoder refuses);
- ``parse_event (invalid UTF-8)``: the same with a bad byte in one field (slow path, cleaned);
- ``normalize_event``: one raw SDK event -> canonical event, the collector's per-event cost.

Events are real: the first OTTO events when ``../shared/data`` exists, else built ones. Best of 5 runs.
"""
from __future__ import annotations

import argparse
import itertools
import time

from udfs.contract import EVENT_ADAPTER, dumps_event, make_event, parse_event
from udfs.normalize import normalize_event


def _events(n: int) -> list[bytes]:
    from udfs.datasets import data_dir

    path = data_dir() / "otto" / "test_resources_train.jsonl"
    if path.exists():
        from udfs.datasets import otto

        evs = list(itertools.islice(otto.iter_events(path), n))
    else:
        evs = [make_event("click", session_id=f"s{i % 50}", client_ts_ms=1_700_000_000_000 + i, source_key=str(i),
                          props={"element_id": "b", "element_role": "product_card"}) for i in range(n)]
    return [dumps_event(e) for e in evs]


def _best_us(fn, items, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for x in items:
            fn(x)
        best = min(best, (time.perf_counter() - t) / len(items))
    return best * 1e6


def _pydantic_path(raw: bytes) -> dict:
    return EVENT_ADAPTER.validate_json(raw).model_dump()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="distinct events per run")
    args = ap.parse_args()
    values = _events(args.n)
    size = sum(map(len, values)) / len(values)
    print(f"parse_event                 {_best_us(parse_event, values):7.1f} µs/event  ({len(values)} events, {size:.0f} B avg)")
    bad = [v.replace(b'"path":"/product/', b'"path":"/pro\xffduct/', 1) for v in values]
    print(f"  pydantic path alone         {_best_us(_pydantic_path, values):7.1f} µs/event  "
          "(validate_json + model_dump: what parse_event did before udfs/contract_fast.py)")
    print(f"parse_event (invalid UTF-8) {_best_us(parse_event, bad):7.1f} µs/event")
    raw = {"event_id": "1b4e28ba-2ca1-41d4-8b8e-0b1c2d3e4f5a", "type": "scroll", "session_id": "s1",
           "anonymous_id": "a1", "seq": 3, "client_ts_ms": 1_764_500_000_000,
           "page": {"url": "https://shop.example/p/42", "item_id": "42"},
           "context": {"user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                                     "Chrome/120.0.0.0 Safari/537.36", "viewport_w_px": 1280, "viewport_h_px": 800},
           "props": {"scroll_depth_pct": 55.0, "offset_px": 1200, "document_height_px": 3000}}

    def norm(r):
        return normalize_event(r, received_at_ms=1_764_500_000_100, sent_at_ms=1_764_500_000_050,
                               client_ip="203.0.113.7")

    print(f"normalize_event             {_best_us(norm, [raw] * len(values)):7.1f} µs/event")


if __name__ == "__main__":
    main()
