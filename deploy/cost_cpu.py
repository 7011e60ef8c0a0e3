"""The CPU rows of ``python -m deploy.cost --measured bench.json``: the CPU profile's month,
from figures ``bench/engine_bench.py --json`` measured, not assumed.

From the bench's ``llamacpp`` entry (and ``transformers``/``float32`` as a comparison row):

- busy time per question: ``warm_p50_s`` at the bench's thread count (the profile's, ideally);
- cold start: Modal's container start (assumed, ``cost.cpu.container_start_s``) + ``load_s``
  + the first question's extra prompt work (``cold_first_s − warm_p50_s``), billed on every
  start; the user waits ``container start + load_s + cold_first_s``;
- capacity: the best ``throughput_qps`` at a concurrency the profile allows (``cpu.parallel``);
- memory: the profile's reservation, or the measured peak RSS when that is larger;
- price: busy container time (answering, cold starts) at ``cores``, the idle tail after the
  last question at ``reserved_cores`` (Modal bills the greater of reservation and use, and
  lets a container burst above its reservation while its host has spare cores: a burst is
  likely, not guaranteed, which is the cost of a cheap idle tail).

The median a user sees mixes warm and cold answers: with a share c of cold starts, it is the
warm quantile 0.5 / (1 − c), read off a straight line between the measured p50 and p99
(every cold answer taken as slower than every warm one), or the cold wait when c ≥ 0.5.

Where Modal's CPUs would differ from the bench machine (printed with the table):
the CPU model (Modal names none; llama.cpp's decoding follows memory bandwidth and SIMD
width, and the Modal image builds llama.cpp for portable AVX2, not ``-march=native``); the
core (Modal's ``cpu=1.0`` is one physical core, two hyperthreads, while a cloud VM's vCPU is
usually half a physical core, so a 2-vCPU bench is closest to ``cores: 1.0``); neighbours
on a shared host (p99); the GGUF read from the Volume on a cold start instead of local disk;
and Modal's container start, which the bench cannot see.
"""

from __future__ import annotations

from dataclasses import dataclass

from deploy.config import THREADS_PER_CORE, DeployConfig
from deploy.containers import Segment, Usage, bot_cost, segments, text_table, usage
from deploy.measured import EngineBench, EngineRun

P99 = 0.99
COMPARISON = ("transformers", "float32")


@dataclass(frozen=True)
class CpuFigures:
    run: EngineRun
    container_start_s: float  # assumed
    capacity_qps: float
    capacity_level: int
    memory_mib: int

    @property
    def busy_s(self) -> float:
        return self.run.warm_p50_s

    @property
    def first_extra_s(self) -> float:
        return max(0.0, self.run.cold_first_s - self.run.warm_p50_s)

    @property
    def cold_start_s(self) -> float:
        """Billed container seconds of a cold start beyond the question's own busy time."""
        return self.container_start_s + self.run.load_s + self.first_extra_s

    @property
    def cold_wait_s(self) -> float:
        """What a user waits for an answer that starts a container."""
        return self.container_start_s + self.run.load_s + self.run.cold_first_s


def cpu_figures(config: DeployConfig, run: EngineRun) -> CpuFigures:
    levels = {level: qps for level, qps in run.throughput_qps.items() if level <= config.cpu.parallel}
    if not levels:  # measured only above the profile's concurrency: the lowest level is the closest
        lowest = min(run.throughput_qps)
        levels = {lowest: run.throughput_qps[lowest]}
    level = max(levels, key=lambda lv: levels[lv])
    rss_mib = int(-(-run.peak_rss_mb // 256) * 256)  # rounded up to 256 MiB
    return CpuFigures(
        run=run,
        container_start_s=config.cost.cpu.container_start_s,
        capacity_qps=levels[level],
        capacity_level=level,
        memory_mib=max(config.cpu.memory_mib, rss_mib),
    )


def p50_with_cold_starts(run: EngineRun, *, cold_share: float, cold_wait_s: float) -> float:
    """The median answer time when ``cold_share`` of the answers wait ``cold_wait_s``.

    >>> from deploy.measured import EngineRun
    >>> run = EngineRun(engine="llamacpp", dtype="q4_k_m", threads=2, load_s=1, cold_first_s=3,
    ...     warm_p50_s=1.0, warm_p99_s=3.45, tokens_per_s=38, peak_rss_mb=900,
    ...     throughput_qps={1: 0.8}, questions=40)
    >>> p50_with_cold_starts(run, cold_share=0.0, cold_wait_s=6)
    1.0
    >>> round(p50_with_cold_starts(run, cold_share=0.2, cold_wait_s=6), 3)  # warm quantile 0.625
    1.625
    >>> p50_with_cold_starts(run, cold_share=0.6, cold_wait_s=6)
    6
    """
    if cold_share >= 0.5:
        return cold_wait_s
    q = 0.5 / (1 - cold_share)
    if q >= P99:
        return run.warm_p99_s
    return run.warm_p50_s + (q - 0.5) / (P99 - 0.5) * (run.warm_p99_s - run.warm_p50_s)


@dataclass(frozen=True)
class CpuEstimate:
    name: str
    min_containers: int
    scaledown_window_s: int
    usage: Usage
    worker_cost: float
    bot_cost: float
    p50_s: float

    @property
    def total(self) -> float:
        return self.worker_cost + self.bot_cost

    def per_1000(self, amount: float) -> float:
        return amount / self.usage.requests * 1000 if self.usage.requests else 0.0

    def meets(self, config: DeployConfig) -> bool:
        target = config.cost.cpu
        return self.per_1000(self.worker_cost) <= target.target_per_1000 and self.p50_s <= target.target_p50_s


def cpu_estimate(
    config: DeployConfig,
    figures: CpuFigures,
    *,
    min_containers: int,
    scaledown_window_s: int,
    segs: list[Segment] | None = None,
) -> CpuEstimate:
    cost, cpu = config.cost, config.cpu
    segs = segs if segs is not None else segments(config)
    warmups = cost.traffic.business_days_per_month if config.business_hours.warmup_minutes_before is not None else 0
    use = usage(
        segs,
        latency_s=figures.busy_s,
        cold_start_s=figures.cold_start_s,
        min_containers=min_containers,
        scaledown_window_s=scaledown_window_s,
        max_containers=cpu.max_containers,
        warmups_per_month=warmups,
        capacity_qps=figures.capacity_qps,
    )
    memory = figures.memory_mib / 1024 * cost.memory_gib_hour
    # Busy hours (answering, starting) are billed at the cores used; the idle tail at the reservation.
    busy_h = min(use.container_hours, (use.requests * figures.busy_s + use.cold_starts * figures.cold_start_s) / 3600)
    worker = busy_h * (cpu.cores * cost.cpu_core_hour + memory)
    worker += (use.container_hours - busy_h) * (cpu.reservation * cost.cpu_core_hour + memory)
    return CpuEstimate(
        name=figures.run.name,
        min_containers=min_containers,
        scaledown_window_s=scaledown_window_s,
        usage=use,
        worker_cost=worker,
        bot_cost=bot_cost(config, segs),
        p50_s=p50_with_cold_starts(figures.run, cold_share=use.cold_start_rate, cold_wait_s=figures.cold_wait_s),
    )


def _figure_lines(config: DeployConfig, bench: EngineBench, figures: CpuFigures, source: str) -> list[str]:
    run, cpu, machine = figures.run, config.cpu, bench.machine
    speed = f"; {run.tokens_per_s:g} tokens/s" if run.tokens_per_s is not None else ""
    accuracy = f"; execution accuracy {run.execution_accuracy:.0%}" if run.execution_accuracy is not None else ""
    out = [
        f"  measured ({source}: {bench.model}, {run.name}, {run.threads} threads on {machine.cores} logical "
        f"CPUs of {machine.cpu}, {run.questions} questions):",
        f"    busy time per question   {run.warm_p50_s:g} s (warm p50; p99 {run.warm_p99_s:g} s{speed}{accuracy})",
        f"    engine load              {run.load_s:g} s; first question after it {run.cold_first_s:g} s",
        f"    capacity                 {figures.capacity_qps:g} questions/s at concurrency {figures.capacity_level} "
        f"(cpu.parallel {cpu.parallel})",
        f"    peak RSS                 {run.peak_rss_mb:g} MB → {figures.memory_mib} MiB billed "
        f"(cpu.memory_mib {cpu.memory_mib})",
        "  assumed:",
        f"    container start          {figures.container_start_s:g} s (cost.cpu.container_start_s: Modal's start "
        "and the imports, not measurable here)",
        f"    a cold start bills       {figures.cold_start_s:g} s (start + load + the first question's extra "
        f"{figures.first_extra_s:g} s); a user waits {figures.cold_wait_s:g} s",
        f"    prices                   ${config.cost.cpu_core_hour:.4f}/core-h, "
        f"${config.cost.memory_gib_hour:.4f}/GiB-h ({config.cost.prices_checked}); traffic as above",
    ]
    warnings: list[str] = []
    if run.threads != cpu.threads:
        warnings.append(
            f"the bench ran {run.threads} threads, the profile runs {cpu.threads}: its latency is not the profile's"
        )
    if bench.model != cpu.model:
        warnings.append(f"the bench measured {bench.model}, the profile serves {cpu.model}")
    if run.peak_rss_mb > cpu.memory_mib:
        warnings.append(f"peak RSS {run.peak_rss_mb:g} MB is above cpu.memory_mib {cpu.memory_mib}: raise it")
    alone = run.throughput_qps.get(1)
    if alone is not None and alone * run.warm_p50_s > 1.5:  # one at a time cannot beat 1 / latency
        warnings.append(
            f"throughput at concurrency 1 ({alone:g}/s) is above one question per warm p50 "
            f"({1 / run.warm_p50_s:.2f}/s): the bench's throughput figures look wrong (cached answers?)"
        )
    peak = max(seg.rate_per_hour for seg in segments(config)) / 3600
    if peak > figures.capacity_qps * cpu.max_containers:
        warnings.append(
            f"the peak ({peak:.2f} questions/s) is beyond {cpu.max_containers} containers × "
            f"{figures.capacity_qps:g}/s: raise cpu.max_containers"
        )
    out += [f"  WARNING: {w}" for w in warnings]
    return out


def cpu_section(
    config: DeployConfig, bench: EngineBench, run: EngineRun, *, source: str, selected: bool = False
) -> list[str]:
    """The CPU profile's figures, rows and verdict, as printed lines (``selected``: the bot's worker)."""
    cpu, target, segs = config.cpu, config.cost.cpu, segments(config)
    figures = cpu_figures(config, run)
    role = " (selected: this project's estimate)" if selected else ""
    out = [
        "",
        f"CPU profile{role} (cpu: {cpu.engine}, cores {cpu.cores:g} = "
        f"{cpu.cores * THREADS_PER_CORE:g} hyperthreads on Modal, {cpu.threads} threads, {cpu.memory_mib} MiB, "
        f"{cpu.min_containers}-{cpu.max_containers} containers, {cpu.parallel} questions at once)",
    ]
    out += _figure_lines(config, bench, figures, source)
    out += [
        "  On Modal these would differ: another CPU model (Modal names none; the image builds llama.cpp for "
        "portable AVX2), a Modal core is a physical core (2 hyperthreads) while the bench's logical CPUs are "
        "likely vCPUs (half a core each), shared hosts (p99), the GGUF read from the Volume on a cold start, "
        "and the container start (assumed). Measure on Modal to replace them.",
        "",
        "CPU estimate per scaling setting ($/month; p50 includes cold starts)",
    ]
    rows: list[list[str]] = []
    estimates: list[CpuEstimate] = []
    sweep = target.sweep
    for min_c in sweep.min_containers:
        for window in sweep.scaledown_window_s if min_c == 0 else sweep.scaledown_window_s[:1]:
            estimates.append(cpu_estimate(config, figures, min_containers=min_c, scaledown_window_s=window, segs=segs))
    chosen = cpu_estimate(
        config, figures, min_containers=cpu.min_containers, scaledown_window_s=cpu.scaledown_window_s, segs=segs
    )
    comparison = bench.run(*COMPARISON)
    compared = (
        cpu_estimate(
            config,
            cpu_figures(config, comparison),
            min_containers=cpu.min_containers,
            scaledown_window_s=cpu.scaledown_window_s,
            segs=segs,
        )
        if comparison is not None and comparison is not run
        else None
    )
    for e in [*estimates, *([compared] if compared else [])]:
        rows.append(
            [
                e.name,
                str(e.min_containers),
                str(e.scaledown_window_s) if e.min_containers == 0 else "-",
                f"{e.usage.container_hours:.0f}",
                f"{e.usage.cold_start_rate:.1%}",
                f"{e.p50_s:.2f}",
                f"{e.worker_cost:.2f}",
                f"{e.bot_cost:.2f}",
                f"{e.total:.2f}",
                f"{e.per_1000(e.worker_cost):.2f}",
                f"{e.per_1000(e.total):.2f}",
                "yes" if e.meets(config) else "no",
            ]
        )
    header = ["engine", "min", "scaledown s", "CPU-h", "cold starts", "p50 s", "worker $", "bot $", "total $"]
    header += ["worker $/1k", "total $/1k", "target"]
    out += text_table(header, rows)
    if compared is not None:
        out.append(f"  ({compared.name}: the comparison row, at the configured scaling only)")
    hourly = cpu.reservation * config.cost.cpu_core_hour + figures.memory_mib / 1024 * config.cost.memory_gib_hour
    busy_only = chosen.usage.requests * figures.busy_s / 3600 * (cpu.cores * config.cost.cpu_core_hour)
    meeting = [e for e in estimates if e.meets(config)]
    out += [
        "",
        f"Target (issue 17): ≤ ${target.target_per_1000:.2f} per 1,000 requests for the worker, with p50 ≤ "
        f"{target.target_p50_s:g} s (cold starts included); the bot's ${chosen.bot_cost:.2f}/month is the same "
        "for every worker and is in total $ only.",
        f"  the configured CPU profile (min_containers {cpu.min_containers}, scaledown {cpu.scaledown_window_s} s): "
        f"${chosen.per_1000(chosen.worker_cost):.2f} per 1,000 requests, p50 {chosen.p50_s:.2f} s, "
        f"{chosen.usage.cold_start_rate:.1%} cold starts → "
        + ("meets the target" if chosen.meets(config) else _missed(config, chosen)),
        "  settings in the table that meet it: "
        + (
            ", ".join(f"min {e.min_containers} scaledown {e.scaledown_window_s} s" for e in meeting)
            if meeting
            else "none"
        ),
        f"  busy {chosen.usage.requests * figures.busy_s / 3600:.0f} of {chosen.usage.container_hours:.0f} "
        f"container-hours: the rest is the idle tail after questions, billed at the reservation "
        f"({cpu.reservation:g} of {cpu.cores:g} cores, ${hourly:.4f}/h), so the window and that price decide the "
        f"cost; meeting ${target.target_per_1000:.2f} at this window needs ≤ "
        f"${_hourly_for_target(config, chosen):.4f}/h",
        f"  counted the seed's way (busy core-seconds only, no idle, no memory): "
        f"${busy_only / chosen.usage.requests * 1000 if chosen.usage.requests else 0:.3f} per 1,000 requests",
    ]
    return out


def _hourly_for_target(config: DeployConfig, e: CpuEstimate) -> float:
    hours = e.usage.container_hours
    return config.cost.cpu.target_per_1000 * e.usage.requests / 1000 / hours if hours else 0.0


def _missed(config: DeployConfig, e: CpuEstimate) -> str:
    target, why = config.cost.cpu, []
    if e.per_1000(e.worker_cost) > target.target_per_1000:
        why.append(f"cost above ${target.target_per_1000:.2f}")
    if e.p50_s > target.target_p50_s:
        why.append(f"p50 above {target.target_p50_s:g} s")
    return "does NOT meet the target (" + ", ".join(why) + ")"
