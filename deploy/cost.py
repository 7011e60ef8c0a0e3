"""``python -m deploy.cost``: what the Modal deployment costs a month, from stated inputs.

Every input is printed: prices, traffic and latency come from the deployment config (or
flags), never from this file. Measured figures replace the assumed ones with ``--measured``
(a JSON object or a list of them, one per GPU type)::

    {"gpu": "A10G", "p50_ms": 850, "cold_start_s": 18, "source": "bench.gpu on Modal, 2026-01-05"}

(``latency_s`` may stand for ``p50_ms``, ``load_s`` for ``cold_start_s``.) ``--latency-s`` and
``--cold-start-s`` set them for ``--gpu`` (default: the configured GPU).

The model. A month is 730 hours split into business peak hours, other business hours and
off-hours, each with a steady Poisson arrival rate λ. One GPU container serves a request in
``latency_s`` and then idles for up to ``scaledown_window`` W before stopping, so per second
of wall clock it is up for ``λ·latency + (1 − e^(−λW)) + λ·e^(−λW)·cold_start`` seconds: busy
time, the idle tail after each request (an exponential gap cut at W), and a cold start for the
share ``e^(−λW)`` of requests that find no container. ``min_containers`` keeps that many up all
month. The warm-up cron saves the day's first cold start and costs one start and one window.
The GPU container's CPU and memory are billed beside the GPU; the bot's CPU container too.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.config import DEFAULT_CONFIG, DeployConfig, DeployConfigError, GpuPrice, SeedCostInputs, load_config

HOURS_PER_MONTH = 730.0
SECONDS_PER_HOUR = 3600.0
BOT_LATENCY_S = 0.5  # CPU seconds per request on the bot (routing, guard, preview)
BOT_COLD_START_S = 3.0


# --- the seed's arithmetic --------------------------------------------------------------------


@dataclass(frozen=True)
class SeedEstimate:
    compute_hours: float
    compute: float
    idle_hours: float
    idle: float
    storage: float
    network: float

    @property
    def total(self) -> float:
        return self.compute + self.idle + self.storage + self.network


def seed_estimate(seed: SeedCostInputs) -> SeedEstimate:
    """The seed's table from its inputs.

    >>> e = seed_estimate(SeedCostInputs())
    >>> round(e.compute, 2), round(e.idle, 2), round(e.total, 2)
    (15.4, 4.84, 22.74)
    """
    hours = seed.requests_per_month * seed.seconds_per_request / SECONDS_PER_HOUR
    if seed.round_compute_hours_up:
        hours = math.ceil(hours)
    idle_hours = seed.idle_windows_per_day * seed.business_days_per_month * seed.idle_window_s / SECONDS_PER_HOUR
    return SeedEstimate(
        compute_hours=hours,
        compute=hours * seed.gpu_hour,
        idle_hours=idle_hours,
        idle=idle_hours * seed.gpu_hour,
        storage=seed.storage_month,
        network=seed.network_month,
    )


# --- traffic ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    name: str
    hours: float  # per month
    rate_per_hour: float

    @property
    def requests(self) -> float:
        return self.hours * self.rate_per_hour


def segments(config: DeployConfig) -> list[Segment]:
    """Peak, other business and off-hours of a month, with their request rates."""
    traffic, hours = config.cost.traffic, config.business_hours
    days, per_day = traffic.business_days_per_month, hours.hours_per_day
    peak = min(traffic.peak_hours_per_day, per_day)
    business = traffic.requests_per_month * traffic.business_share
    weight = (per_day - peak) + peak * traffic.peak_multiplier  # in base-rate hours per day
    base_rate = business / (days * weight) if weight > 0 else 0.0
    off_hours = HOURS_PER_MONTH - days * per_day
    off = traffic.requests_per_month - business
    return [
        Segment("business peak", days * peak, base_rate * traffic.peak_multiplier),
        Segment("business", days * (per_day - peak), base_rate),
        Segment("off-hours", off_hours, off / off_hours if off_hours > 0 else 0.0),
    ]


# --- containers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    container_hours: float
    cold_starts: float
    requests: float

    @property
    def cold_start_rate(self) -> float:
        return self.cold_starts / self.requests if self.requests else 0.0


def usage(
    segs: Sequence[Segment],
    *,
    latency_s: float,
    cold_start_s: float,
    min_containers: int,
    scaledown_window_s: float,
    max_containers: int,
    warmups_per_month: float = 0.0,
) -> Usage:
    """Container-hours a month and the cold starts among the requests (module docstring)."""
    hours = min_containers * HOURS_PER_MONTH
    cold = 0.0
    requests = 0.0
    for seg in segs:
        lam = seg.rate_per_hour / SECONDS_PER_HOUR
        requests += seg.requests
        if min_containers > 0:
            extra = max(0.0, lam * latency_s - min_containers)  # beyond the warm containers
            hours += extra * seg.hours
            continue
        miss = math.exp(-lam * scaledown_window_s)
        up = lam * latency_s + (1 - miss) + lam * miss * cold_start_s
        hours += min(float(max_containers), up) * seg.hours
        cold += seg.requests * miss
    if min_containers == 0 and warmups_per_month:
        saved = min(cold, warmups_per_month)
        cold -= saved
        hours += warmups_per_month * (cold_start_s + scaledown_window_s) / SECONDS_PER_HOUR
        hours -= saved * cold_start_s / SECONDS_PER_HOUR  # those starts happened anyway, earlier
    return Usage(container_hours=hours, cold_starts=cold, requests=requests)


@dataclass(frozen=True)
class Estimate:
    gpu: str
    min_containers: int
    scaledown_window_s: int
    gpu_usage: Usage
    gpu_cost: float
    bot_cost: float
    requests: float

    @property
    def total(self) -> float:
        return self.gpu_cost + self.bot_cost

    @property
    def per_1000(self) -> float:
        return self.total / self.requests * 1000 if self.requests else 0.0


def estimate(
    config: DeployConfig, gpu: str, price: GpuPrice, *, min_containers: int, scaledown_window_s: int
) -> Estimate:
    cost, hours = config.cost, config.business_hours
    segs = segments(config)
    warmups = cost.traffic.business_days_per_month if hours.warmup_minutes_before is not None else 0.0
    gpu_use = usage(
        segs,
        latency_s=price.latency_s,
        cold_start_s=price.cold_start_s,
        min_containers=min_containers,
        scaledown_window_s=scaledown_window_s,
        max_containers=config.gpu.max_containers,
        warmups_per_month=warmups,
    )
    sidecar = config.gpu.cpu * cost.cpu_core_hour + config.gpu.memory_mib / 1024 * cost.memory_gib_hour
    bot_use = usage(
        segs,
        latency_s=BOT_LATENCY_S,
        cold_start_s=BOT_COLD_START_S,
        min_containers=config.bot.min_containers,
        scaledown_window_s=config.bot.scaledown_window_s,
        max_containers=config.bot.max_containers,
    )
    bot_hour = config.bot.cpu * cost.cpu_core_hour + config.bot.memory_mib / 1024 * cost.memory_gib_hour
    return Estimate(
        gpu=gpu,
        min_containers=min_containers,
        scaledown_window_s=scaledown_window_s,
        gpu_usage=gpu_use,
        gpu_cost=gpu_use.container_hours * (price.hour + sidecar),
        bot_cost=bot_use.container_hours * bot_hour,
        requests=gpu_use.requests,
    )


# --- measured figures -------------------------------------------------------------------------


def read_measured(path: Path) -> dict[str, dict[str, Any]]:
    """Measured figures by GPU type from a JSON file (module docstring)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    rows = data if isinstance(data, list) else [data]
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        if not isinstance(row, dict) or "gpu" not in row:
            raise ValueError(f"{path}: each entry needs a 'gpu' field")
        figures: dict[str, Any] = {"source": row.get("source", str(path))}
        if "p50_ms" in row:
            figures["latency_s"] = float(row["p50_ms"]) / 1000
        elif "latency_s" in row:
            figures["latency_s"] = float(row["latency_s"])
        for key in ("cold_start_s", "load_s"):
            if key in row:
                figures["cold_start_s"] = float(row[key])
                break
        found[str(row["gpu"])] = figures
    return found


def with_measured(
    prices: dict[str, GpuPrice], measured: dict[str, dict[str, Any]]
) -> tuple[dict[str, GpuPrice], dict[str, str]]:
    """Prices with measured latency/cold start swapped in, and where each figure came from."""
    out, sources = dict(prices), {}
    for gpu, figures in measured.items():
        if gpu not in out:
            raise ValueError(f"measured figures for '{gpu}', which has no price under cost.gpus")
        update = {k: v for k, v in figures.items() if k in ("latency_s", "cold_start_s")}
        out[gpu] = out[gpu].model_copy(update=update)
        sources[gpu] = f"measured ({figures['source']}): " + ", ".join(f"{k} {v:g}" for k, v in update.items())
    return out, sources


# --- report ------------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return lines


def report(config: DeployConfig, *, measured: dict[str, dict[str, Any]] | None = None) -> str:
    cost, hours, traffic = config.cost, config.business_hours, config.cost.traffic
    prices, sources = with_measured(cost.gpus, measured or {})
    out: list[str] = []
    seed = seed_estimate(cost.seed)
    s = cost.seed
    out += [
        "The seed plan's estimate, rebuilt from its inputs",
        f"  compute  {s.requests_per_month:,} req × {s.seconds_per_request:g} s = "
        f"{s.requests_per_month * s.seconds_per_request / SECONDS_PER_HOUR:.1f} GPU-h"
        f"{' → billed ' + format(seed.compute_hours, 'g') + ' h' if s.round_compute_hours_up else ''}"
        f" × ${s.gpu_hour:.2f}/h = ${seed.compute:.2f}",
        f"  idle     {s.idle_windows_per_day:g} windows/day × {s.business_days_per_month:g} days × "
        f"{s.idle_window_s:g} s = {seed.idle_hours:.1f} GPU-h × ${s.gpu_hour:.2f}/h = ${seed.idle:.2f}",
        f"  storage ${seed.storage:.2f}, network ${seed.network:.2f}",
        f"  total    ${seed.total:.2f}/month; ${seed.compute / s.requests_per_month * 1000:.2f} per 1,000 requests "
        f"counting compute only (the seed's figure), "
        f"${seed.total / s.requests_per_month * 1000:.2f} counting everything",
        "",
        "Assumptions (deploy/config.yaml → cost; change them there or with flags)",
        f"  prices: {cost.prices_checked}; CPU ${cost.cpu_core_hour:.4f}/core-h, memory "
        f"${cost.memory_gib_hour:.4f}/GiB-h",
        f"  traffic: {traffic.requests_per_month:,} requests/month, {traffic.business_share:.0%} in business hours "
        f"({', '.join(hours.days)} {hours.start:%H:%M}-{hours.end:%H:%M} {hours.timezone}, "
        f"{traffic.business_days_per_month:g} days/month), {traffic.peak_hours_per_day:g} peak h/day at "
        f"{traffic.peak_multiplier:g}× the other business hours",
    ]
    for seg in segments(config):
        out.append(f"    {seg.name:<14} {seg.hours:6.0f} h/month at {seg.rate_per_hour:7.1f} requests/h")
    out.append(
        f"  GPU container: +{config.gpu.cpu:g} cores, {config.gpu.memory_mib / 1024:g} GiB; max "
        f"{config.gpu.max_containers} containers; one request's GPU time = latency_s (batching only "
        "matters above these loads)"
    )
    warm = (
        f"warm-up {hours.warmup_minutes_before} min before business hours on each business day"
        if hours.warmup_minutes_before is not None
        else "no warm-up"
    )
    out.append(f"  {warm} (min_containers 0 only)")
    out.append(
        f"  bot (CPU): {config.bot.cpu:g} cores, {config.bot.memory_mib / 1024:g} GiB, min_containers "
        f"{config.bot.min_containers}, scaledown {config.bot.scaledown_window_s} s"
    )
    out.append("  per GPU (hour price; warm latency_s; cold_start_s; where the figures come from):")
    for gpu, price in prices.items():
        origin = sources.get(gpu, "assumed (config), not measured")
        out.append(f"    {gpu:<10} ${price.hour:.2f}/h; {price.latency_s:g} s; {price.cold_start_s:g} s; {origin}")
    out.append("")
    rows: list[list[str]] = []
    chosen: Estimate | None = None
    for gpu, price in prices.items():
        for min_c in cost.sweep.min_containers:
            windows = cost.sweep.scaledown_window_s if min_c == 0 else cost.sweep.scaledown_window_s[:1]
            for window in windows:
                e = estimate(config, gpu, price, min_containers=min_c, scaledown_window_s=window)
                rows.append(
                    [
                        gpu,
                        str(min_c),
                        str(window) if min_c == 0 else "-",
                        f"{e.gpu_usage.container_hours:.0f}",
                        f"{e.gpu_usage.cold_start_rate:.1%}",
                        f"{e.gpu_cost:.2f}",
                        f"{e.bot_cost:.2f}",
                        f"{e.total:.2f}",
                        f"{e.per_1000:.2f}",
                    ]
                )
        if gpu == config.gpu.type:
            chosen = estimate(
                config,
                gpu,
                price,
                min_containers=config.gpu.min_containers,
                scaledown_window_s=config.gpu.scaledown_window_s,
            )
    out.append("Estimate per GPU type and scaling setting ($/month)")
    header = ["GPU", "min", "scaledown s", "GPU-h", "cold starts", "GPU $", "bot $", "total $", "$/1k req"]
    out += _table(header, rows)
    if chosen is not None:
        out += [
            "",
            f"This project's estimate (the configured {chosen.gpu}, min_containers {chosen.min_containers}, "
            f"scaledown {chosen.scaledown_window_s} s):",
            f"  ${chosen.total:.2f}/month (GPU ${chosen.gpu_cost:.2f}, bot ${chosen.bot_cost:.2f}); "
            f"${chosen.per_1000:.2f} per 1,000 requests; {chosen.gpu_usage.container_hours:.0f} GPU container-hours; "
            f"{chosen.gpu_usage.cold_start_rate:.1%} of requests wait for a cold start",
        ]
        business = [seg for seg in segments(config) if seg.name != "off-hours"]
        gap_s = min((SECONDS_PER_HOUR / seg.rate_per_hour for seg in business if seg.rate_per_hour), default=0.0)
        out.append(
            f"  Unlike the seed's table, which bills only busy seconds plus a few idle windows: "
            f"in business hours a request comes every {gap_s:.0f}-"
            f"{max((SECONDS_PER_HOUR / seg.rate_per_hour for seg in business if seg.rate_per_hour), default=0.0):.0f} s"
            f" on average, less than the scaledown window, so a GPU container stays up for all "
            f"{sum(seg.hours for seg in business):.0f} business hours of the month."
        )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.cost", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="deployment config (deploy/config.yaml)")
    parser.add_argument("--measured", type=Path, action="append", default=[], help="JSON with measured figures")
    parser.add_argument("--gpu", help="GPU type that --latency-s/--cold-start-s describe (default: the configured)")
    parser.add_argument("--latency-s", type=float, help="measured warm seconds per request")
    parser.add_argument("--cold-start-s", type=float, help="measured seconds from container start to ready")
    parser.add_argument("--requests-per-month", type=int, help="override the traffic profile's volume")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        measured: dict[str, dict[str, Any]] = {}
        for path in args.measured:
            measured.update(read_measured(path))
    except DeployConfigError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.latency_s is not None or args.cold_start_s is not None:
        flags: dict[str, Any] = {"source": "flags"}
        if args.latency_s is not None:
            flags["latency_s"] = args.latency_s
        if args.cold_start_s is not None:
            flags["cold_start_s"] = args.cold_start_s
        measured[args.gpu or config.gpu.type] = flags
    if args.requests_per_month is not None:
        traffic = config.cost.traffic.model_copy(update={"requests_per_month": args.requests_per_month})
        config = config.model_copy(update={"cost": config.cost.model_copy(update={"traffic": traffic})})
    try:
        print(report(config, measured=measured))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
