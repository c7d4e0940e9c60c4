"""What a simulation run gives: job waits, pilot core-hours delivered, used and wasted, spend.

*Delivered* core-hours are a pilot's cores times the time its batch job or VM ran (boot
included: the site charges it); *used* are the core-hours jobs occupied on it (runs cut short
by an eviction included, also reported apart as *badput*); *wasted* = delivered - used.
*Cost* is delivered core-hours times the site's ``cost_per_core_hour``. A job's *wait* is from
its submission to its first start; jobs that match no site never start and are counted apart.
The *start latency* of a pilot is from its submission to its startd joining the pool.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .engine import SimResult

__all__ = ["chart_png", "comparison_png", "quantile", "render_text", "summarize", "waste_breakdown", "write_html"]

WASTE_TARGET_PCT = 5.0
WAIT_TARGET_FACTOR = 1.0


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile by linear interpolation (0.0 for no values)."""
    if not values:
        return 0.0
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def waste_breakdown(result: SimResult) -> dict[str, float]:
    """Wasted core-hours split: booting, whole pilots without a job, free cores of partly used pilots."""
    runs: dict[str, list[tuple[float, int]]] = {}
    for r in result.runs:
        runs.setdefault(r.pilot_id, []).extend(((r.start, r.cpus), (r.end, -r.cpus)))
    for j in result.jobs:  # still running at the horizon: busy, as the used core-hours count them
        if j.pilot is not None:
            runs.setdefault(j.pilot.pilot_id, []).extend(((j.run_start, j.spec.cpus), (result.end, -j.spec.cpus)))
    boot = empty = partial = 0.0
    for p in result.pilots:
        if p.started_at is None:
            continue
        end = p.ended_at if p.ended_at is not None else result.end
        joined = min(p.joined_at, end) if p.joined_at is not None else end
        boot += (joined - p.started_at) * p.cpus
        t, busy = joined, 0
        for at, delta in [*sorted(runs.get(p.pilot_id, ())), (end, 0)]:
            at = min(max(at, t), end)
            if busy == 0:
                empty += (at - t) * p.cpus
            else:
                partial += (at - t) * max(0, p.cpus - busy)
            busy += delta
            t = at
    return {"booting_core_h": boot / 3600, "empty_pilot_core_h": empty / 3600, "partly_used_core_h": partial / 3600}


def _site_summary(result: SimResult, site: str, cost: float) -> dict[str, Any]:
    pilots = [p for p in result.pilots if p.site == site]
    ran = [p for p in pilots if p.started_at is not None]
    delivered = sum(((p.ended_at or result.end) - (p.started_at or 0.0)) * p.cpus for p in ran) / 3600
    used = sum(p.busy_core_s for p in ran) / 3600
    latency = [p.joined_at - p.submitted_at for p in pilots if p.joined_at is not None]
    return {
        "pilots": len(pilots),
        "pilots_started": len(ran),
        "pilots_never_used": sum(1 for p in ran if p.busy_core_s == 0),
        "peak_pilots": result.peak_alive.get(site, 0),
        "delivered_core_h": delivered,
        "used_core_h": used,
        "wasted_core_h": delivered - used,
        "waste_pct": 100 * (delivered - used) / delivered if delivered else 0.0,
        "cost": delivered * cost,
        "start_latency_p50_s": quantile(latency, 0.5),
        "job_runs": sum(1 for r in result.runs if r.site == site),
    }


def summarize(result: SimResult) -> dict[str, Any]:
    """Figures of one run, JSON-friendly."""
    cfg = result.scenario.config
    sites = {s.name: _site_summary(result, s.name, s.cost_per_core_hour) for s in cfg.sites}
    waits = [j.first_start - j.submit_at for j in result.jobs if j.first_start is not None]
    delivered = sum(s["delivered_core_h"] for s in sites.values())
    used = sum(s["used_core_h"] for s in sites.values())
    latency = [p.joined_at - p.submitted_at for p in result.pilots if p.joined_at is not None]
    badput = sum((r.end - r.start) * r.cpus for r in result.runs if not r.completed) / 3600
    p50 = quantile(waits, 0.5)
    lat50 = quantile(latency, 0.5)
    waste_pct = 100 * (delivered - used) / delivered if delivered else 0.0
    return {
        "policy": result.policy,
        "jobs": len(result.jobs),
        "jobs_started": len(waits),
        "jobs_completed": sum(1 for j in result.jobs if j.end_at is not None),
        "jobs_matching_no_site": result.unrunnable_jobs,
        "evictions": sum(j.evictions for j in result.jobs),
        "wait_p50_s": p50,
        "wait_p95_s": quantile(waits, 0.95),
        "wait_mean_s": sum(waits) / len(waits) if waits else 0.0,
        "pilots": len(result.pilots),
        "start_latency_p50_s": lat50,
        "delivered_core_h": delivered,
        "used_core_h": used,
        "wasted_core_h": delivered - used,
        "waste_pct": waste_pct,
        "badput_core_h": badput,
        "waste_breakdown": waste_breakdown(result),
        "cost": sum(s["cost"] for s in sites.values()),
        "sites": sites,
        "simulated_hours": (result.end - result.start) / 3600,
        "wall_s": result.wall_s,
        "cycles": result.cycles,
        "targets": {
            "waste_ok": waste_pct <= WASTE_TARGET_PCT,
            "wait_ok": p50 <= WAIT_TARGET_FACTOR * lat50,
        },
    }


def _hms(s: float) -> str:
    s = round(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def render_text(summary: Mapping[str, Any]) -> str:
    """A report for a terminal."""
    s = summary
    t = s["targets"]
    lines = [
        f"policy {s['policy']}: {s['jobs']} jobs, {s['jobs_completed']} completed, "
        f"{s['jobs_matching_no_site']} match no site; {s['simulated_hours']:.1f} simulated hours "
        f"in {s['wall_s']:.1f} s ({s['cycles']} factory cycles)",
        f"job wait: p50 {_hms(s['wait_p50_s'])}, p95 {_hms(s['wait_p95_s'])}, mean {_hms(s['wait_mean_s'])}; "
        f"pilot start latency p50 {_hms(s['start_latency_p50_s'])}",
        f"pilot core-hours: delivered {s['delivered_core_h']:.0f}, used {s['used_core_h']:.0f}, "
        f"wasted {s['wasted_core_h']:.0f} ({s['waste_pct']:.1f} %), badput {s['badput_core_h']:.0f}; "
        f"spend ${s['cost']:.2f}",
        "wasted core-hours: {booting_core_h:.0f} booting, {empty_pilot_core_h:.0f} in pilots without a job, "
        "{partly_used_core_h:.0f} free cores of partly used pilots".format(**s["waste_breakdown"]),
        f"targets: waste <= {WASTE_TARGET_PCT:g} %: {'met' if t['waste_ok'] else 'NOT met'}; "
        f"p50 wait <= {WAIT_TARGET_FACTOR:g} x start latency: {'met' if t['wait_ok'] else 'NOT met'}",
        "",
        f"{'site':10} {'pilots':>7} {'peak':>5} {'unused':>7} {'latency':>8} {'delivered':>10} "
        f"{'used':>8} {'wasted':>8} {'waste%':>7} {'spend':>9}",
    ]
    for name, x in s["sites"].items():
        lines.append(
            f"{name:10} {x['pilots']:>7} {x['peak_pilots']:>5} {x['pilots_never_used']:>7} "
            f"{_hms(x['start_latency_p50_s']):>8} {x['delivered_core_h']:>10.0f} {x['used_core_h']:>8.0f} "
            f"{x['wasted_core_h']:>8.0f} {x['waste_pct']:>7.1f} {'$' + format(x['cost'], '.2f'):>9}"
        )
    return "\n".join(lines)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def chart_png(result: SimResult, path: str | Path, title: str = "") -> Path:
    """Jobs idle and running, and pilot cores per site (busy cores as a line), over time."""
    plt = _pyplot()
    xs = [s.t / 3600 for s in result.samples]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    top.plot(xs, [s.idle_jobs for s in result.samples], label="idle jobs")
    top.plot(xs, [s.running_jobs for s in result.samples], label="running jobs")
    top.set_ylabel("jobs")
    top.legend(loc="upper right")
    top.set_title(title or f"campus-factory simulation ({result.policy})")
    names = [s.name for s in result.scenario.config.sites]
    stacks = [[s.cores[n] for s in result.samples] for n in names]
    bottom.stackplot(xs, *stacks, labels=[f"{n} cores" for n in names], alpha=0.7)
    bottom.plot(xs, [sum(s.busy_cores.values()) for s in result.samples], color="black", label="busy cores")
    bottom.set_ylabel("pilot cores in the pool")
    bottom.set_xlabel("simulated hours")
    bottom.legend(loc="upper right")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def comparison_png(per_policy: Mapping[str, Mapping[str, float]], path: str | Path) -> Path:
    """Bars of waste %, p50/p95 wait and cost per policy."""
    plt = _pyplot()
    names = list(per_policy)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    panels = [
        ("wasted core-hours (% of delivered)", ["waste_pct"]),
        ("job wait (minutes): p50, p95", ["wait_p50_s", "wait_p95_s"]),
        ("spend ($)", ["cost"]),
    ]
    for ax, (label, keys) in zip(axes, panels, strict=True):
        width = 0.8 / len(keys)
        for i, key in enumerate(keys):
            scale = 60.0 if key.startswith("wait") else 1.0
            vals = [per_policy[n][key] / scale for n in names]
            ax.bar([x + i * width for x in range(len(names))], vals, width, label=key)
        ax.set_xticks([x + (len(keys) - 1) * width / 2 for x in range(len(names))], names)
        ax.set_title(label, fontsize=10)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def write_html(summary: Mapping[str, Any], png: str | Path, path: str | Path) -> Path:
    """A self-contained page: the chart (embedded) and the report's tables."""
    data = base64.b64encode(Path(png).read_bytes()).decode()
    s = summary
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v))}</td>"
            for v in (
                name,
                x["pilots"],
                x["peak_pilots"],
                x["pilots_never_used"],
                _hms(x["start_latency_p50_s"]),
                f"{x['delivered_core_h']:.0f}",
                f"{x['used_core_h']:.0f}",
                f"{x['wasted_core_h']:.0f}",
                f"{x['waste_pct']:.1f}",
                f"${x['cost']:.2f}",
            )
        )
        + "</tr>"
        for name, x in s["sites"].items()
    )
    head = "".join(
        f"<th>{h}</th>"
        for h in ("site", "pilots", "peak", "never used", "start latency p50", "delivered", "used", "wasted", "waste %")
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>campus-factory simulation</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}td,th{{padding:.2em .6em;text-align:right}}
table{{border-collapse:collapse}}tr:nth-child(even){{background:#f3f3f3}}</style></head><body>
<h1>campus-factory simulation: {html.escape(str(s["policy"]))}</h1>
<pre>{html.escape(render_text(s))}</pre>
<img alt="jobs and pilot cores over time" src="data:image/png;base64,{data}" style="max-width:100%">
<h2>Per site (core-hours)</h2>
<table><tr>{head}<th>spend</th></tr>{rows}</table>
</body></html>
"""
    out = Path(path)
    out.write_text(page, encoding="utf-8")
    return out
