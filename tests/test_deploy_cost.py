"""The cost model's arithmetic: the seed's table from its inputs, and our own from stated ones."""

from __future__ import annotations

import doctest
import json
import math
from pathlib import Path

import pytest
import yaml

import deploy.config
import deploy.containers
import deploy.cost
import deploy.cost_cpu
import deploy.measured
import deploy.modal_app
from deploy.config import DEFAULT_CONFIG, PROFILE_ENV, GpuPrice, SeedCostInputs, load_config
from deploy.cost import HOURS_PER_MONTH, Segment, estimate, main, read_measured, seed_estimate, segments, usage
from deploy.cost_cpu import cpu_estimate, cpu_figures
from deploy.measured import EngineBench

BENCH = Path(__file__).parent / "fixtures" / "engine_bench.json"


@pytest.fixture(autouse=True)
def _no_profile_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROFILE_ENV, raising=False)


def test_doctests() -> None:
    for module in (
        deploy.config,
        deploy.containers,
        deploy.cost,
        deploy.cost_cpu,
        deploy.measured,
        deploy.modal_app,
    ):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_the_seed_table_is_reproduced_from_its_inputs() -> None:
    seed = seed_estimate(SeedCostInputs())
    assert seed.compute_hours == 14  # 25,000 × 2 s = 13.9 h, billed as 14
    assert (round(seed.compute, 2), round(seed.idle, 2), seed.storage, seed.network) == (15.40, 4.84, 2.00, 0.50)
    assert round(seed.total, 2) == 22.74
    assert round(seed.compute / 25_000 * 1000, 2) == 0.62  # the seed's "$0.62 per 1,000": compute only
    exact = seed_estimate(SeedCostInputs(round_compute_hours_up=False))
    assert exact.compute == pytest.approx(25_000 * 2 / 3600 * 1.10)


def test_segments_hold_every_request_and_every_hour() -> None:
    config = load_config(DEFAULT_CONFIG)
    segs = segments(config)
    assert sum(s.requests for s in segs) == pytest.approx(25_000)
    assert sum(s.hours for s in segs) == pytest.approx(HOURS_PER_MONTH)
    peak, business, off = segs
    assert peak.rate_per_hour == pytest.approx(4 * business.rate_per_hour)
    assert 50 <= business.rate_per_hour <= 100 and 300 <= peak.rate_per_hour <= 500  # the seed's profile
    assert off.rate_per_hour < 2


def test_usage_by_hand() -> None:
    # One request an hour for 100 h, W = 60 s, 2 s each, 40 s cold start: each request pays
    # 2 s + the idle tail E[min(G, W)] + the cold start with probability e^(-λW).
    lam = 1 / 3600
    miss = math.exp(-lam * 60)
    expected_s = 100 * 3600 * (lam * 2 + (1 - miss) + lam * miss * 40)
    got = usage(
        [Segment("x", 100, 1.0)],
        latency_s=2,
        cold_start_s=40,
        min_containers=0,
        scaledown_window_s=60,
        max_containers=5,
    )
    assert got.container_hours == pytest.approx(expected_s / 3600)
    assert got.cold_start_rate == pytest.approx(miss)
    # Busy all the time: capped at max_containers.
    busy = usage(
        [Segment("x", 10, 36_000.0)],
        latency_s=2,
        cold_start_s=40,
        min_containers=0,
        scaledown_window_s=60,
        max_containers=5,
    )
    assert busy.container_hours == pytest.approx(50) and busy.cold_start_rate < 1e-6
    # One warm container: the whole month, no cold start; more only beyond its capacity.
    warm = usage(
        [Segment("x", 730, 10.0)],
        latency_s=2,
        cold_start_s=40,
        min_containers=1,
        scaledown_window_s=60,
        max_containers=5,
    )
    assert warm.container_hours == pytest.approx(730) and warm.cold_starts == 0


def test_warm_up_trades_a_start_and_a_window_for_the_first_cold_start() -> None:
    seg = [Segment("night", 100, 0.5)]
    plain = usage(seg, latency_s=2, cold_start_s=40, min_containers=0, scaledown_window_s=120, max_containers=5)
    warmed = usage(
        seg,
        latency_s=2,
        cold_start_s=40,
        min_containers=0,
        scaledown_window_s=120,
        max_containers=5,
        warmups_per_month=10,
    )
    assert warmed.cold_starts == pytest.approx(plain.cold_starts - 10)
    assert warmed.container_hours == pytest.approx(plain.container_hours + 10 * 120 / 3600)


def test_estimate_scales_with_the_prices_given() -> None:
    config = load_config(DEFAULT_CONFIG)
    cheap = estimate(
        config, "A10G", GpuPrice(hour=1.0, latency_s=2, cold_start_s=45), min_containers=0, scaledown_window_s=120
    )
    dear = estimate(
        config, "A10G", GpuPrice(hour=2.0, latency_s=2, cold_start_s=45), min_containers=0, scaledown_window_s=120
    )
    assert dear.gpu_cost - cheap.gpu_cost == pytest.approx(cheap.gpu_usage.container_hours)
    assert cheap.per_1000 == pytest.approx(cheap.total / 25)
    # At ~92 requests/h the gaps are shorter than the window: the GPU is up all business hours.
    assert cheap.gpu_usage.container_hours > 22 * 9


def test_measured_figures_replace_assumed_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "measured.json"
    path.write_text(json.dumps([{"gpu": "A10G", "p50_ms": 800, "cold_start_s": 12, "source": "bench.gpu"}]))
    assert read_measured(path) == {"A10G": {"source": "bench.gpu", "latency_s": 0.8, "cold_start_s": 12.0}}
    assert main(["--measured", str(path)]) == 0
    out = capsys.readouterr().out
    assert "A10G       $1.10/h; 0.8 s; 12 s; measured (bench.gpu): latency_s 0.8, cold_start_s 12" in out
    assert main(["--latency-s", "1.5", "--gpu", "T4"]) == 0
    assert "T4         $0.59/h; 1.5 s; 45 s; measured (flags)" in capsys.readouterr().out
    path.write_text(json.dumps({"gpu": "B200", "p50_ms": 1}))
    assert main(["--measured", str(path)]) == 2  # bad input, like every unusable --measured file
    captured = capsys.readouterr()
    assert "'B200', which has no price under cost.gpus (priced: T4, L4, A10G" in captured.err and captured.out == ""


def test_report_prints_assumptions_seed_and_estimate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "total    $22.74/month; $0.62 per 1,000 requests" in out
    assert "25,000 requests/month" in out and "America/New_York" in out
    assert "assumed (config), not measured" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("A10G ") and "$" not in line]
    assert [(r[1], r[2]) for r in rows] == [("0", "60"), ("0", "120"), ("0", "300"), ("0", "900"), ("1", "-")]
    assert "This project's estimate (the configured A10G, min_containers 0, scaledown 120 s)" in out
    assert main(["--requests-per-month", "1000"]) == 0
    assert "1,000 requests/month" in capsys.readouterr().out


# --- the CPU profile, from the engine bench's measured figures ------------------------------


def _bench(**changes: object) -> dict[str, object]:
    data: dict[str, object] = json.loads(BENCH.read_text())
    engines = data["engines"]
    assert isinstance(engines, list)
    for key, value in changes.items():
        engines[0][key] = value
    return data


def _rows(out: str, name: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines() if line.strip().startswith(name + " ")]


def test_capacity_decides_the_containers_when_one_is_not_enough() -> None:
    # 10 questions/s for 10 h: one at a time at 1.2 s each needs 12 containers (capped at 5);
    # a container that serves 2.5/s at its concurrency needs 4.
    seg = [Segment("x", 10, 36_000.0)]
    one_at_a_time = usage(seg, latency_s=1.2, cold_start_s=5, min_containers=0, scaledown_window_s=60, max_containers=5)
    batched = usage(
        seg, latency_s=1.2, cold_start_s=5, min_containers=0, scaledown_window_s=60, max_containers=5, capacity_qps=2.5
    )
    assert one_at_a_time.container_hours == pytest.approx(50) and batched.container_hours == pytest.approx(40)
    warm = usage(
        seg, latency_s=1.2, cold_start_s=5, min_containers=1, scaledown_window_s=60, max_containers=5, capacity_qps=2.5
    )
    assert warm.container_hours == pytest.approx(730 + 3 * 10)  # three more beside the warm one


def test_cpu_figures_and_estimate_by_hand() -> None:
    config = load_config(DEFAULT_CONFIG)
    bench = EngineBench.model_validate_json(BENCH.read_text())
    run = bench.run("llamacpp")
    assert run is not None and run.throughput_qps == {1: 0.8, 4: 2.1, 8: 2.9}  # keys were strings
    figures = cpu_figures(config, run)
    assert (figures.capacity_qps, figures.capacity_level, figures.memory_mib) == (2.9, 8, 1536)
    assert figures.cold_start_s == pytest.approx(2.0 + 1.1 + (3.2 - 1.2))  # start (assumed) + load + first extra
    assert figures.cold_wait_s == pytest.approx(2.0 + 1.1 + 3.2)
    four = config.model_copy(update={"cpu": config.cpu.model_copy(update={"parallel": 4})})
    assert cpu_figures(four, run).capacity_qps == 2.1  # only the concurrency the profile allows
    transformers = bench.run("transformers", "float32")
    assert transformers is not None and cpu_figures(config, transformers).memory_mib == 3072  # its peak RSS
    e = cpu_estimate(config, figures, min_containers=0, scaledown_window_s=60)
    use = usage(
        segments(config),
        latency_s=1.2,
        cold_start_s=figures.cold_start_s,
        min_containers=0,
        scaledown_window_s=60,
        max_containers=5,
        warmups_per_month=22,
        capacity_qps=2.9,
    )
    assert e.usage == use
    # Answering and starting at the core it bursts to, the idle tail at the quarter core reserved.
    busy = (use.requests * 1.2 + use.cold_starts * figures.cold_start_s) / 3600
    idle = use.container_hours - busy
    assert e.worker_cost == pytest.approx(busy * (1.0 * 0.0472 + 1.5 * 0.008) + idle * (0.25 * 0.0472 + 1.5 * 0.008))
    assert e.per_1000(e.worker_cost) == pytest.approx(e.worker_cost / 25)
    # 16.5 % cold: the median is the warm quantile 0.5 / 0.835 = 0.60, between p50 and p99.
    q = 0.5 / (1 - use.cold_start_rate)
    assert e.p50_s == pytest.approx(1.2 + (q - 0.5) / 0.49 * (4.0 - 1.2))
    always_cold = cpu_estimate(config, figures, min_containers=0, scaledown_window_s=2)
    assert always_cold.usage.cold_start_rate > 0.5 and always_cold.p50_s == pytest.approx(6.3)


def test_measured_bench_adds_cpu_rows_and_a_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    plain = capsys.readouterr().out
    assert "CPU profile: no measured figures, so no rows" in plain and "CPU estimate" not in plain
    assert main(["--measured", str(BENCH)]) == 0
    out = capsys.readouterr().out
    assert _rows(out, "A10G") == _rows(plain, "A10G") and _rows(out, "A10G")  # the GPU rows as they were
    assert out.startswith(plain.split("CPU profile: no measured")[0])
    rows = _rows(out, "llamacpp/q4_k_m")
    assert [(r[1], r[2]) for r in rows] == [("0", w) for w in ("15", "30", "60", "120", "300")] + [("1", "-")]
    # A quarter core reserved: the 60 s and 120 s windows meet $0.25 with p50 ≤ 2 s.
    assert [r[2] for r in rows if r[-1] == "yes"] == ["60", "120"]
    (compared,) = _rows(out, "transformers/float32")
    assert (compared[1], compared[2], compared[-1]) == ("0", "60", "no")
    assert _rows(out, "transformers/bfloat16") == []
    for needle in (
        "measured (" + str(BENCH) + ": pypi:qwen2.5-coder-0.5b, llamacpp/q4_k_m, 2 threads on 2 logical CPUs of AMD",
        "busy time per question   1.2 s (warm p50; p99 4 s; 38 tokens/s; execution accuracy 62%)",
        "capacity                 2.9 questions/s at concurrency 8 (cpu.parallel 8)",
        "container start          2 s (cost.cpu.container_start_s: Modal's start and the imports, not measurable",
        "a cold start bills       5.1 s",
        "a user waits 6.3 s",
        "On Modal these would differ: another CPU model",
        "Target (issue 17): ≤ $0.25 per 1,000 requests for the worker, with p50 ≤ 2 s",
        "the configured CPU profile (min_containers 0, scaledown 60 s): $0.19 per 1,000 requests, p50 1.76 s",
        "16.5% cold starts → meets the target",
        "settings in the table that meet it: min 0 scaledown 60 s, min 0 scaledown 120 s",
        "billed at the reservation (0.25 of 1 cores, $0.0238/h)",
        "counted the seed's way (busy core-seconds only",
    ):
        assert needle in out, needle
    assert "WARNING" not in out


def test_a_whole_core_reserved_misses_the_target_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = yaml.safe_load(DEFAULT_CONFIG.read_text())
    data["cpu"].update(reserved_cores=1.0, scaledown_window_s=60)  # guaranteed speed, billed while idle
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    assert main(["--config", str(config), "--measured", str(BENCH)]) == 0
    out = capsys.readouterr().out
    assert (
        "$0.43 per 1,000 requests, p50 1.76 s, 16.5% cold starts → does NOT meet the target (cost above $0.25)" in out
    )
    assert "settings in the table that meet it: none" in out
    assert all(r[-1] == "no" for r in _rows(out, "llamacpp/q4_k_m"))


def test_the_selected_profile_heads_the_estimate(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(PROFILE_ENV, "cpu")
    assert main(["--measured", str(BENCH)]) == 0
    out = capsys.readouterr().out
    assert "The GPU profile's estimate (not selected) (the configured A10G" in out
    assert "CPU profile (selected: this project's estimate)" in out
    assert main([]) == 0
    assert "CPU profile (selected): no measured figures" in capsys.readouterr().out


def test_figures_that_do_not_describe_the_profile_are_flagged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bench.json"
    data = _bench(threads=4, peak_rss_mb=2000.0, throughput_qps={"1": 3.3, "8": 1.8})
    data["model"] = "pypi:other"
    path.write_text(json.dumps(data))
    assert main(["--measured", str(path)]) == 0
    out = capsys.readouterr().out
    assert "WARNING: the bench ran 4 threads, the profile runs 2" in out
    assert "WARNING: the bench measured pypi:other, the profile serves pypi:qwen2.5-coder-0.5b" in out
    assert "WARNING: peak RSS 2000 MB is above cpu.memory_mib 1536" in out
    assert "WARNING: throughput at concurrency 1 (3.3/s) is above one question per warm p50 (0.83/s)" in out


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "cannot read the file (No such file or directory)"),
        ("{not json", "not valid JSON at line 1 column 2"),
        (b"\xff\xfe", "not a UTF-8 text file"),
        ([{"p50_ms": 800}], "each entry needs a 'gpu' field"),
        ({"machine": {"cores": 2}, "model": "m"}, "engines: Field required"),
        ({"machine": {"cores": 2}, "model": "m", "engines": []}, "engines: List should have at least 1 item"),
        ("missing warm_p50_s", "engines.0.warm_p50_s: Field required"),
        ("p99 below p50", "engines.0: warm_p99_s 0.5 is below warm_p50_s 1.2"),
        ("bad throughput", "engines.0.throughput_qps: level 4: -1.0 questions/s"),
        ("bad level", "engines.0.throughput_qps.x.[key]: Input should be a valid integer"),
        ("no llamacpp", "no 'llamacpp' entry among the engines (found: transformers/float32, transformers/bfloat16)"),
    ],
)
def test_unusable_measured_files_exit_2_and_print_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: object, needle: str
) -> None:
    path = tmp_path / "bench.json"
    bench = _bench()
    engines = bench["engines"]
    assert isinstance(engines, list)
    if content == "missing warm_p50_s":
        del engines[0]["warm_p50_s"]
    elif content == "p99 below p50":
        engines[0]["warm_p99_s"] = 0.5
    elif content == "bad throughput":
        engines[0]["throughput_qps"] = {"1": 0.8, "4": -1}
    elif content == "bad level":
        engines[0]["throughput_qps"] = {"x": 0.8}
    elif content == "no llamacpp":
        del engines[0]
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str) and content.startswith("{"):
        path.write_text(content)
    elif isinstance(content, (list, dict)):
        path.write_text(json.dumps(content))
    elif content is not None:
        path.write_text(json.dumps(bench))
    assert main(["--measured", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(f"error: {path}: ") and needle in captured.err, captured.err


def test_one_engine_bench_file_at_a_time(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--measured", str(BENCH), "--measured", str(BENCH)]) == 2
    captured = capsys.readouterr()
    assert "a second engine bench file (the first: " in captured.err and captured.out == ""
    with pytest.raises(deploy.measured.MeasuredFileError, match="holds CPU figures, not GPU ones"):
        read_measured(BENCH)
