"""The page-rates table (udfs/page_rates.py): built with PageStats' definitions, validated, and applied as a pure
function of event and table, so the tested guarantees (batching invariance, replay = live) hold with it; and with
a table built from the site's history the engaged visitor scores above the quick leaver with intent-lr/2."""
from __future__ import annotations

import json
import random

import pytest

from tests.unit.test_intent_moves import T0, V2, engaged_visitor, quick_leaver, site_history
from udfs.config import JobConfig
from udfs.decide import Decider, decide_all
from udfs.page_rates import MAX_PAGES, PageRatesError, PageRatesTable, build_table, is_page_rates_document
from udfs.page_stats import PageStats
from udfs.rules import DEFAULT_RULES_PATH, RuleEngine
from udfs.scoring import ReloadingScorer
from udfs.session import PAGE_BOUNCE_RATE_FIELD, PAGE_EXIT_RATE_FIELD, event_order_key


def _table() -> PageRatesTable:
    return build_table(site_history(), "test.1")


def test_table_holds_the_rates_page_stats_gives_after_the_whole_window():
    history = sorted(site_history(), key=event_order_key)
    stats = PageStats(n_buckets=48)
    for event in history:
        stats.observe(event)
    table = _table()
    assert set(table.pages) == {"/deals", "/demo/", "/compare", "/p/mouse", "/p/dock", "/cart"}
    for page in table.pages:
        assert table.rates(page) == stats.rates(page)
    # /deals: 60 one-page visits -> bounce and exit move from the priors towards 1 (60 views, 20 pseudo-counts)
    bounce, exit_rate = table.rates("/deals")
    assert bounce == pytest.approx((60 + 20 * 0.0222) / 80) and exit_rate == pytest.approx((60 + 20 * 0.0430) / 80)
    assert table.rates("/never-seen") == (table.bounce_prior, table.exit_prior)
    assert (table.from_ms, table.to_ms) == (history[0]["ts_ms"], history[-1]["ts_ms"] + 1)


def test_table_does_not_depend_on_input_order_and_respects_the_window():
    history = site_history()
    shuffled = history[:]
    random.Random(3).shuffle(shuffled)
    assert build_table(shuffled, "v").to_json() == build_table(history, "v").to_json()
    first_views = min(e["ts_ms"] for e in history) + 30_000  # only the first 30 s: no /cart view yet
    early = build_table(history, "v", to_ms=first_views)
    assert "/cart" not in early.pages and early.to_ms == first_views
    with pytest.raises(PageRatesError, match="no page view"):
        build_table(history, "v", from_ms=T0 + 10**9)
    with pytest.raises(PageRatesError, match="non-empty version"):
        build_table(history, " ")


def test_annotation_is_a_function_of_event_and_table_only():
    table = _table()
    events = sorted(engaged_visitor() + quick_leaver(), key=event_order_key)
    whole = [dict(e) for e in events]
    table.annotate(whole)
    split = [dict(e) for e in events]
    for start in reversed(range(0, len(split), 3)):  # batches of 3, last first: arrival order must not matter
        table.annotate(split[start:start + 3])
    assert whole == split
    annotated = [e for e in whole if PAGE_BOUNCE_RATE_FIELD in e]
    assert annotated and all(e["type"] == "page_view" for e in annotated)
    deals = next(e for e in whole if e["type"] == "page_view" and e["page"]["path"] == "/deals")
    assert (deals[PAGE_BOUNCE_RATE_FIELD], deals[PAGE_EXIT_RATE_FIELD]) == table.rates("/deals")
    # the table's own rates, not the priors: 60 one-page visits of /deals in the history (20 pseudo-counts)
    assert deals[PAGE_BOUNCE_RATE_FIELD] == pytest.approx((60 + 20 * table.bounce_prior) / 80)
    assert deals[PAGE_EXIT_RATE_FIELD] == pytest.approx((60 + 20 * table.exit_prior) / 80)
    assert not any(PAGE_EXIT_RATE_FIELD in e for e in whole if e["type"] != "page_view")


def test_document_round_trip_and_kind_detection():
    table = _table()
    again = PageRatesTable.from_json(table.to_json())
    assert again == table
    assert is_page_rates_document(table.to_json())
    assert not is_page_rates_document(DEFAULT_RULES_PATH.read_text())


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("page_rates_version"), "page_rates_version"),
    (lambda d: d.update(page_rates_version=""), "page_rates_version"),
    (lambda d: d.update(window={"from_ms": 5, "to_ms": 1}), "after window.to_ms"),
    (lambda d: d.update(window={"from_ms": 1.5, "to_ms": 2}), "window must be"),
    (lambda d: d.update(prior_weight=-1), "prior_weight"),
    (lambda d: d.update(bounce_prior=1.5), "bounce_prior"),
    (lambda d: d["pages"].update({"/x": [0.1]}), r"pages\['/x'\]"),
    (lambda d: d["pages"].update({"/x": [0.1, float("nan")]}), r"pages\['/x'\]\[1\]"),
    (lambda d: d["pages"].update({"/x": [True, 0.2]}), r"pages\['/x'\]\[0\]"),
    (lambda d: d["pages"].update({"": [0.1, 0.2]}), "empty page key"),
    (lambda d: d.update(pages=[]), "pages must be"),
])
def test_invalid_documents_are_rejected_with_the_field_named(change, message):
    doc = _table().to_document()
    change(doc)
    with pytest.raises(PageRatesError, match=message):
        PageRatesTable.from_document(doc)


def test_not_json_and_too_many_pages_are_rejected():
    with pytest.raises(PageRatesError, match="not JSON"):
        PageRatesTable.from_json("{nope")
    doc = _table().to_document()
    doc["pages"] = {f"/p/{i}": [0.1, 0.1] for i in range(MAX_PAGES + 1)}
    with pytest.raises(PageRatesError, match="more than"):
        PageRatesTable.from_document(doc)


def _scores(annotate, batch_size: int) -> tuple[dict, list]:
    decider = Decider(JobConfig(), ReloadingScorer(version=V2), RuleEngine.default(), clock_ms=lambda: 0)
    events = sorted(engaged_visitor() + quick_leaver(), key=event_order_key)
    store, actions = {}, []
    for i in range(0, len(events), batch_size):
        batch = [dict(e) for e in events[i:i + batch_size]]
        annotate(batch)
        got, dlq, store = decide_all(decider, batch, len(batch), store)
        assert dlq == []
        actions += got
    return {sid: e.last_intent_score for sid, e in store.items()}, actions


def test_with_a_table_of_the_site_history_the_engaged_visitor_scores_above_the_leaver_at_any_batching():
    table = _table()
    small, small_actions = _scores(table.annotate, 2)
    large, large_actions = _scores(table.annotate, 50)
    assert small == large and small_actions == large_actions  # window 10 = 50, with cross-session features
    assert small["engaged"] >= 5 * small["leaver"] and small["engaged"] - small["leaver"] >= 0.03, small
    without, _ = _scores(lambda batch: 0, 50)  # no table: the rate features hold the UCI means
    assert without["engaged"] < without["leaver"], without  # the reason models/intent-lr/README.md gives


def test_the_table_json_is_what_the_cli_writes(tmp_path):
    from click.testing import CliRunner

    from intentflow.page_rates_cmd import page_rates_cmd

    events = tmp_path / "history.jsonl"
    events.write_text("".join(json.dumps(e) + "\n" for e in site_history() + site_history()[:5]))  # 5 duplicates
    out = tmp_path / "table.json"
    res = CliRunner().invoke(page_rates_cmd, ["build", "--events", str(events), "--version", "t.1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert PageRatesTable.from_json(out.read_text()) == build_table(site_history(), "t.1")
    res = CliRunner().invoke(page_rates_cmd, ["build", "--events", str(events), "--out", str(out), "--from-ms",
                                              str(T0 + 10**9)])
    assert res.exit_code == 1 and "no page view" in res.output


@pytest.mark.parametrize("lines, args, message", [
    (['{"type": "page_view", "ts_ms": 1}', "{nope"], [], ":2: not JSON"),
    (["[1, 2]"], [], "an event is a JSON object, got list"),
    (['{"type": "page_view", "session_id": "s"}'], [], "ts_ms must be an integer"),
    (['{"type": "page_view", "ts_ms": "17"}'], [], "ts_ms must be an integer"),
    ([""], [], "no page_view among the 0 events"),
    (['{"type": "page_view", "ts_ms": 5}'], ["--from-ms", "9", "--to-ms", "3"], "must be before --to-ms"),
])
def test_build_refuses_bad_input_with_a_clear_error_and_no_traceback(tmp_path, lines, args, message):
    from click.testing import CliRunner

    from intentflow.page_rates_cmd import page_rates_cmd

    events = tmp_path / "e.jsonl"
    events.write_text("\n".join(lines) + "\n")
    res = CliRunner().invoke(page_rates_cmd, ["build", "--events", str(events), "--out", str(tmp_path / "t.json"), *args])
    assert res.exit_code == (2 if "--to-ms" in message else 1), res.output  # usage error / ClickException
    assert message in res.output, res.output
    assert isinstance(res.exception, SystemExit) and "Traceback" not in res.output
