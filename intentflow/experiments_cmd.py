"""``intentflow experiments``: read the experiment counts the job keeps in Redis and report them.

``intentflow experiments report`` prints, per experiment, the sessions, exposures and conversions per arm,
the lift over the control arm with its fixed-horizon 95 % interval, the always-valid p-value and confidence
sequence of the mSPRT, and the sample-ratio-mismatch check (udfs/experiment_stats.py; docs/experiments.md).
An experiment whose id starts with ``simulation`` holds counts of ``intentflow simulate`` and is labelled
SIMULATION wherever it is shown.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from connectors.redis_store import RedisKeys

from udfs.config import stack_settings

from udfs.experiment_stats import SIMULATION_PREFIX, DesignUnknown, is_simulation  # noqa: F401 - re-exported

ROOT = Path(__file__).resolve().parents[1]


def experiment_design(experiment_id: str, ruleset: dict[str, Any] | None, holdout_pct: float | None
                      ) -> tuple[dict[str, float], str, str, str]:
    """:func:`udfs.experiment_stats.experiment_design`, its error as a click error (exit 1 with the reason)."""
    from udfs.experiment_stats import experiment_design as design  # noqa: PLC0415

    try:
        return design(experiment_id, ruleset, holdout_pct)
    except DesignUnknown as exc:
        raise click.ClickException(str(exc)) from exc


def _pp(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.2f} pp"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.1f} %"


def format_report(experiment_id: str, report: dict[str, Any]) -> str:
    """The text of one experiment's report (what ``intentflow experiments report`` prints)."""
    from udfs.experiments import METRICS  # noqa: PLC0415

    label = "SIMULATION — " if is_simulation(experiment_id) else ""
    num, den, control = report["numerator"], report["denominator"], report["control"]
    lines = [f"{label}experiment {experiment_id}: control arm {control}, rate = {num} / {den}"]
    metrics = [m for m in METRICS if any(m in a for a in report["arms"].values())]
    widths = [max(10, len(m) + 2) for m in metrics]
    lines.append(f"  {'arm':<13}" + "".join(f"{m:>{w}}" for m, w in zip(metrics, widths)) + f"{'rate':>10}")
    for arm, totals in report["arms"].items():
        rate = totals.get("rate")
        lines.append(f"  {arm:<13}" + "".join(f"{totals.get(m, 0):>{w}}" for m, w in zip(metrics, widths))
                     + f"{'n/a' if rate is None else f'{rate * 100:.2f} %':>10}")
    for arm, comp in report["comparisons"].items():
        fixed, seq = comp["fixed_horizon"], comp["sequential"]
        if fixed is None:
            lines.append(f"  {arm} vs {control}: no units in an arm yet")
            continue
        lo, hi = fixed["abs_ci"]
        rel = _pct(fixed["rel_lift"])
        rel_ci = "" if fixed["rel_ci"] is None else f" (95 % CI {_pct(fixed['rel_ci'][0])} .. {_pct(fixed['rel_ci'][1])})"
        lines.append(f"  {arm} vs {control}: absolute lift {_pp(fixed['abs_lift'])} (95 % CI {_pp(lo)} .. {_pp(hi)},"
                     f" Newcombe), relative {rel}{rel_ci}")
        lines.append(f"    fixed-horizon score test p = {fixed['p_value']:.4g} (valid only when read once, at a"
                     " horizon fixed in advance)")
        cs = ("unbounded (too few units)" if seq["cs_low"] is None else f"{_pp(seq['cs_low'])} .. {_pp(seq['cs_high'])}")
        verdict = "SIGNIFICANT" if seq["rejected"] else "not significant"
        lines.append(f"    sequential (mSPRT, tau {seq['tau']}): always-valid p = {seq['p_value']:.4g}, 95 % confidence"
                     f" sequence {cs} -> {verdict} at alpha {seq['alpha']}")
    srm = report["srm"]
    observed = ", ".join(f"{a} {n}" for a, n in srm["observed"].items())
    shares = ", ".join(f"{a} {e:.0f}" for a, e in srm["expected"].items())
    flag = "SAMPLE RATIO MISMATCH (p < 0.001): do not trust this experiment's lift" if srm["flagged"] else "ok"
    lines.append(f"  SRM: sessions {observed} vs expected {shares}: chi2 {srm['chi2']:.2f}, p = {srm['p_value']:.4g}"
                 f" -> {flag}")
    lines.append("  CUPED: not applied (no pre-period covariate in the counts)")
    return "\n".join(lines)


def plot_report(reports: dict[str, dict[str, Any]], path: Path) -> None:
    """Absolute lift over time with its 95 % confidence sequence, one panel per comparison (matplotlib,
    from the ``train`` extra). Raises click.ClickException when matplotlib is missing."""
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ModuleNotFoundError as exc:
        raise click.ClickException("--plot needs matplotlib (pip install -e '.[train]')") from exc
    panels = [(eid, arm, comp) for eid, r in reports.items() for arm, comp in r["comparisons"].items() if comp["series"]]
    if not panels:
        raise click.ClickException("nothing to plot: no experiment has counts in both arms")
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 3.2 * len(panels)), squeeze=False)
    for ax, (eid, arm, comp) in zip(axes[:, 0], panels):
        series = comp["series"]
        t0 = series[0]["bucket_start_ms"]
        minutes = [(p["bucket_start_ms"] - t0) / 60000 for p in series]
        lift = [None if p["abs_lift"] is None else p["abs_lift"] * 100 for p in series]
        lo = [float("nan") if p["cs_low"] is None else p["cs_low"] * 100 for p in series]
        hi = [float("nan") if p["cs_high"] is None else p["cs_high"] * 100 for p in series]
        ax.fill_between(minutes, lo, hi, alpha=0.25, label="95 % confidence sequence (mSPRT)")
        ax.plot(minutes, [float("nan") if v is None else v for v in lift], label=f"lift {arm} - {comp_control(reports, eid)}")
        ax.axhline(0, color="black", linewidth=0.8)
        title = ("SIMULATION — " if is_simulation(eid) else "") + f"{eid}: {arm}"
        ax.set_title(title)
        ax.set_xlabel("minutes since the first bucket (event time)")
        ax.set_ylabel("absolute lift, pp")
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def comp_control(reports: dict[str, dict[str, Any]], experiment_id: str) -> str:
    return reports[experiment_id]["control"]


def read_reports(redis_url: str, prefix: str, experiment_ids: list[str], ruleset: dict[str, Any] | None,
                 holdout_pct: float | None, alpha: float, tau: float) -> dict[str, dict[str, Any]]:
    """``{experiment id: experiment_report(...)}`` for the given ids (all with counts when empty)."""
    import redis  # noqa: PLC0415

    from udfs.experiment_stats import experiment_report  # noqa: PLC0415

    client = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=10)
    try:
        ids = experiment_ids or sorted(client.smembers(RedisKeys(prefix).experiments))
        reports = {}
        for experiment_id in ids:
            fields = client.hgetall(RedisKeys(prefix).experiment(experiment_id))
            if not fields:
                raise click.ClickException(f"no counts for experiment {experiment_id!r} under prefix {prefix!r}")
            shares, control, numerator, denominator = experiment_design(experiment_id, ruleset, holdout_pct)
            reports[experiment_id] = experiment_report(fields, shares, control, numerator=numerator,
                                                       denominator=denominator, alpha=alpha, tau=tau)
        return reports
    finally:
        client.close()


@click.group("experiments")
def experiments_cmd() -> None:
    """Experiments: report lift, sequential test and SRM from the job's counts in Redis."""


@experiments_cmd.command("report")
@click.option("--experiment", "experiment_ids", multiple=True, help="experiment id (repeatable); default: all")
@click.option("--redis-url", default=None, help=f"Redis URL.  [default: {stack_settings().redis_url} (INTENTFLOW_REDIS_URL)]")
@click.option("--prefix", default="if:", show_default=True, help="the job's --redis-prefix")
@click.option("--rules-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=ROOT / "rules" / "default.v1.json", show_default=True,
              help="the ruleset that configured the experiments (holdout share, explore_pct)")
@click.option("--holdout-pct", type=click.FloatRange(0, 100), default=None,
              help="holdout share of the personalization experiment, when the rules file does not configure it")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True)
@click.option("--tau", type=click.FloatRange(0, min_open=True), default=None,
              help="mSPRT mixing standard deviation (default udfs.experiment_stats.DEFAULT_TAU)")
@click.option("--json", "as_json", is_flag=True, help="print the reports as JSON")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write a PNG of the lift and its confidence sequence over time")
def report_cmd(experiment_ids, redis_url, prefix, rules_file, holdout_pct, alpha, tau, as_json, plot) -> None:
    """Per experiment: exposures, conversions, rates, lift with 95 % CI, mSPRT, SRM."""
    from udfs.config import stack_settings  # noqa: PLC0415
    from udfs.experiment_stats import DEFAULT_TAU  # noqa: PLC0415
    from udfs.rules import RulesetError, load_ruleset  # noqa: PLC0415

    try:
        ruleset = load_ruleset(rules_file)
    except RulesetError as exc:
        raise click.ClickException(f"{rules_file}: {exc}") from exc
    reports = read_reports(redis_url or stack_settings().redis_url, prefix, list(experiment_ids), ruleset,
                           holdout_pct, alpha, tau or DEFAULT_TAU)
    if not reports:
        raise click.ClickException(f"no experiment counts under prefix {prefix!r}")
    if as_json:
        click.echo(json.dumps({eid: {**r, "simulation": is_simulation(eid)} for eid, r in reports.items()}, indent=1))
    else:
        click.echo("\n\n".join(format_report(eid, r) for eid, r in reports.items()))
    if plot is not None:
        plot_report(reports, plot)
        click.echo(f"plot written to {plot}", err=True)
