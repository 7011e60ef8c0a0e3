"""The cost model's arithmetic: the seed's table from its inputs, and our own from stated ones."""

from __future__ import annotations

import doctest
import json
import math
from pathlib import Path

import pytest

import deploy.config
import deploy.cost
import deploy.modal_app
from deploy.config import DEFAULT_CONFIG, GpuPrice, SeedCostInputs, load_config
from deploy.cost import HOURS_PER_MONTH, Segment, estimate, main, read_measured, seed_estimate, segments, usage


def test_doctests() -> None:
    for module in (deploy.config, deploy.cost, deploy.modal_app):
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
    assert main(["--measured", str(path)]) == 1
    assert "no price" in capsys.readouterr().err


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
