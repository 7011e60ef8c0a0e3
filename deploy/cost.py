"""``python -m deploy.cost``: what the Modal deployment costs a month, from stated inputs.

Every input is printed: prices, traffic and latency come from the deployment config (or
flags), never from this file. Measured figures replace the assumed ones with ``--measured
PATH`` (formats in ``deploy/measured.py``): GPU figures per GPU type, or the file
``bench/engine_bench.py --json`` writes, which adds the CPU profile's rows
(``deploy/cost_cpu.py``). ``--latency-s`` and ``--cold-start-s`` set the GPU figures for
``--gpu`` (default: the configured GPU). A file that cannot be used exits with status 2 and
prints nothing but the reason.

The model (``deploy/containers.py``): a month of Poisson traffic in three segments; a
container is up for its busy time, the idle tail up to the scaledown window after each
request, and a cold start for the requests that find none. The GPU container's CPU and
memory are billed beside the GPU; the bot's CPU container too.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.config import (
    DEFAULT_CONFIG,
    DeployConfig,
    DeployConfigError,
    GpuPrice,
    SeedCostInputs,
    load_config,
    selected_profile,
)
from deploy.containers import (
    HOURS_PER_MONTH,
    SECONDS_PER_HOUR,
    Segment,
    Usage,
    bot_cost,
    segments,
    text_table,
    usage,
)
from deploy.cost_cpu import cpu_section
from deploy.measured import (
    CpuMeasurement,
    EngineBench,
    MeasuredFileError,
    cpu_measurement,
    read_measured,
    read_measured_file,
)

__all__ = ["HOURS_PER_MONTH", "Segment", "estimate", "main", "read_measured", "report", "seed_estimate", "segments"]
__all__ += ["usage"]


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
    return Estimate(
        gpu=gpu,
        min_containers=min_containers,
        scaledown_window_s=scaledown_window_s,
        gpu_usage=gpu_use,
        gpu_cost=gpu_use.container_hours * (price.hour + sidecar),
        bot_cost=bot_cost(config, segs),
        requests=gpu_use.requests,
    )


# --- measured figures -------------------------------------------------------------------------


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


def read_measured_files(
    paths: Sequence[Path], config: DeployConfig
) -> tuple[dict[str, dict[str, Any]], CpuMeasurement | None]:
    """GPU figures from every GPU file and the one engine bench file, all checked first."""
    measured: dict[str, dict[str, Any]] = {}
    cpu: CpuMeasurement | None = None
    for path in paths:
        found = read_measured_file(path)
        if isinstance(found, EngineBench):
            if cpu is not None:
                raise MeasuredFileError(path, f"a second engine bench file (the first: {cpu.source}); pass one")
            cpu = cpu_measurement(path, found)
            continue
        for gpu in found:
            if gpu not in config.cost.gpus:
                priced = ", ".join(config.cost.gpus) or "none"
                raise MeasuredFileError(
                    path, f"measured figures for '{gpu}', which has no price under cost.gpus (priced: {priced})"
                )
        measured.update(found)
    return measured, cpu


def report(
    config: DeployConfig,
    *,
    measured: dict[str, dict[str, Any]] | None = None,
    cpu: CpuMeasurement | None = None,
    profile: str | None = None,
) -> str:
    """The whole printout; ``cpu`` adds the CPU profile's rows, ``profile`` names the selected one."""
    profile = profile or config.profile
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
    out += text_table(header, rows)
    if chosen is not None:
        whose = "This project's estimate" if profile == "gpu" else "The GPU profile's estimate (not selected)"
        out += [
            "",
            f"{whose} (the configured {chosen.gpu}, min_containers {chosen.min_containers}, "
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
    if cpu is not None:
        out += cpu_section(config, cpu.bench, cpu.run, source=cpu.source, selected=profile == "cpu")
    else:
        out += [
            "",
            f"CPU profile{' (selected)' if profile == 'cpu' else ''}: no measured figures, so no rows (they are "
            "never assumed): bench/engine_bench.py --json bench.json, then python -m deploy.cost --measured bench.json",
        ]
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
        profile = selected_profile(config, os.environ, path=args.config)
    except DeployConfigError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    try:
        measured, cpu = read_measured_files(args.measured, config)
    except MeasuredFileError as exc:  # bad input: exit 2, print nothing else
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
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
        print(report(config, measured=measured, cpu=cpu, profile=profile))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
