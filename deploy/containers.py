"""Traffic and containers: how many container-hours a month of questions costs.

A month is 730 hours split into business peak hours, other business hours and off-hours,
each with a steady Poisson arrival rate λ. One container serves a request in ``latency_s``
and then idles for up to ``scaledown_window`` W before stopping, so per second of wall clock
it is up for ``λ·latency + (1 − e^(−λW)) + λ·e^(−λW)·cold_start`` seconds: busy time, the idle
tail after each request (an exponential gap cut at W), and a cold start for the share
``e^(−λW)`` of requests that find no container. A container that serves several requests at
once (``capacity_qps``, measured) is up while some request came within the last
``latency + W`` seconds, ``1 − e^(−λ(latency+W))`` plus the cold starts, and needs
``λ / capacity`` containers when that is more (the two agree with the first form at low load).
``min_containers`` keeps that many up all month. The warm-up cron saves the day's first cold
start and costs one start and one window. Used by ``deploy.cost`` (GPU rows) and
``deploy.cost_cpu`` (CPU rows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from deploy.config import DeployConfig

HOURS_PER_MONTH = 730.0
SECONDS_PER_HOUR = 3600.0
BOT_LATENCY_S = 0.5  # CPU seconds per request on the bot (routing, guard, preview)
BOT_COLD_START_S = 3.0


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
    capacity_qps: float | None = None,
) -> Usage:
    """Container-hours a month and the cold starts among the requests (module docstring).

    ``capacity_qps``: requests per second one container serves at its concurrency; unset, a
    container serves one request at a time (``1 / latency_s``).
    """
    hours = min_containers * HOURS_PER_MONTH
    cold = 0.0
    requests = 0.0
    for seg in segs:
        lam = seg.rate_per_hour / SECONDS_PER_HOUR
        requests += seg.requests
        busy = lam / capacity_qps if capacity_qps else lam * latency_s  # containers kept busy
        if min_containers > 0:
            extra = max(0.0, busy - min_containers)  # beyond the warm containers
            hours += extra * seg.hours
            continue
        if capacity_qps:  # concurrent: up while some request came within the last latency + W
            miss = math.exp(-lam * (latency_s + scaledown_window_s))
            up = (1 - miss) + lam * miss * cold_start_s
        else:  # one at a time: each request's latency, then its idle tail
            miss = math.exp(-lam * scaledown_window_s)
            up = lam * latency_s + (1 - miss) + lam * miss * cold_start_s
        hours += min(float(max_containers), max(up, busy)) * seg.hours
        cold += seg.requests * miss
    if min_containers == 0 and warmups_per_month:
        saved = min(cold, warmups_per_month)
        cold -= saved
        hours += warmups_per_month * (cold_start_s + scaledown_window_s) / SECONDS_PER_HOUR
        hours -= saved * cold_start_s / SECONDS_PER_HOUR  # those starts happened anyway, earlier
    return Usage(container_hours=hours, cold_starts=cold, requests=requests)


def bot_cost(config: DeployConfig, segs: Sequence[Segment]) -> float:
    """The chat server's month (CPU container, ``bot:`` in the config): the same for every worker."""
    cost, bot = config.cost, config.bot
    use = usage(
        segs,
        latency_s=BOT_LATENCY_S,
        cold_start_s=BOT_COLD_START_S,
        min_containers=bot.min_containers,
        scaledown_window_s=bot.scaledown_window_s,
        max_containers=bot.max_containers,
    )
    return use.container_hours * (bot.cpu * cost.cpu_core_hour + bot.memory_mib / 1024 * cost.memory_gib_hour)


def text_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Right-aligned columns under a header and a rule."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return lines
