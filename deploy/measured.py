"""Measured figures for ``python -m deploy.cost --measured PATH``: two kinds of file.

- GPU figures: a JSON object or a list of them, one per GPU type::

      {"gpu": "A10G", "p50_ms": 850, "cold_start_s": 18, "source": "bench.gpu on Modal, 2026-01-05"}

  (``latency_s`` may stand for ``p50_ms``, ``load_s`` for ``cold_start_s``.)
- What ``bench/engine_bench.py --json PATH`` writes: one machine, one model, one entry per
  engine and dtype (``EngineBench``). The CPU rows of the cost table use its ``llamacpp``
  entry; ``throughput_qps`` maps a concurrency level (a string in JSON) to questions/second.

Every problem with a file is a ``MeasuredFileError`` naming the file and the field, raised
before anything is printed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from deploy.config import DeployConfigError, first_error


class MeasuredFileError(DeployConfigError):
    """A bench file that cannot be used: its path and what is wrong, as a config error."""


class _Figures(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)  # a newer bench may add keys


class BenchMachine(_Figures):
    cores: int = Field(ge=1, description="logical CPUs the bench saw (vCPUs on a cloud machine)")
    cpu: str = "unknown"
    memory_gib: float = Field(default=0, ge=0)


class EngineRun(_Figures):
    """One engine and dtype on the bench machine (seconds per question unless named)."""

    engine: str
    dtype: str
    threads: int = Field(ge=1)
    load_s: float = Field(ge=0, description="engine load, process already started")
    cold_first_s: float = Field(gt=0, description="the first question after the load")
    warm_p50_s: float = Field(gt=0)
    warm_p99_s: float = Field(gt=0)
    tokens_per_s: float | None = Field(default=None, ge=0)
    peak_rss_mb: float = Field(gt=0)
    throughput_qps: dict[int, float] = Field(min_length=1, description="concurrency level → questions per second")
    questions: int = Field(ge=1)
    execution_accuracy: float | None = Field(default=None, ge=0, le=1)

    @field_validator("throughput_qps")
    @classmethod
    def _positive(cls, value: dict[int, float]) -> dict[int, float]:
        for level, qps in value.items():
            if level < 1 or qps <= 0:
                raise ValueError(f"level {level}: {qps} questions/s (levels ≥ 1, rates > 0)")
        return dict(sorted(value.items()))

    @model_validator(mode="after")
    def _ordered(self) -> EngineRun:
        if self.warm_p99_s < self.warm_p50_s:
            raise ValueError(f"warm_p99_s {self.warm_p99_s:g} is below warm_p50_s {self.warm_p50_s:g}")
        return self

    @property
    def name(self) -> str:
        return f"{self.engine}/{self.dtype}"


class EngineBench(_Figures):
    machine: BenchMachine
    model: str
    engines: list[EngineRun] = Field(min_length=1)

    def run(self, engine: str, dtype: str | None = None) -> EngineRun | None:
        """The first entry for ``engine`` (and ``dtype``, when given)."""
        return next((r for r in self.engines if r.engine == engine and dtype in (None, r.dtype)), None)


def _load_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MeasuredFileError(path, f"cannot read the file ({exc.strerror or type(exc).__name__})") from None
    except UnicodeDecodeError:
        raise MeasuredFileError(path, "not a UTF-8 text file") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise MeasuredFileError(path, f"not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})") from None


def _gpu_figures(path: Path, data: Any) -> dict[str, dict[str, Any]]:
    rows = data if isinstance(data, list) else [data]
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        if not isinstance(row, dict) or "gpu" not in row:
            raise MeasuredFileError(
                path, "each entry needs a 'gpu' field (or the file needs 'engines', as bench/engine_bench.py writes)"
            )
        figures: dict[str, Any] = {"source": row.get("source", str(path))}
        try:
            if "p50_ms" in row:
                figures["latency_s"] = float(row["p50_ms"]) / 1000
            elif "latency_s" in row:
                figures["latency_s"] = float(row["latency_s"])
            for key in ("cold_start_s", "load_s"):
                if key in row:
                    figures["cold_start_s"] = float(row[key])
                    break
        except (TypeError, ValueError):
            raise MeasuredFileError(path, f"{row['gpu']}: latency and cold start must be numbers") from None
        found[str(row["gpu"])] = figures
    return found


def _engine_bench(path: Path, data: dict[str, Any]) -> EngineBench:
    try:
        return EngineBench.model_validate(data)
    except ValidationError as exc:
        raise MeasuredFileError(path, first_error(exc, where="file")) from None


def read_measured_file(path: Path) -> dict[str, dict[str, Any]] | EngineBench:
    """GPU figures by GPU type, or the engine bench's file (module docstring)."""
    data = _load_json(path)
    if isinstance(data, dict) and ("engines" in data or "machine" in data):
        return _engine_bench(path, data)
    return _gpu_figures(path, data)


def read_measured(path: Path) -> dict[str, dict[str, Any]]:
    """Measured GPU figures by GPU type from a JSON file (module docstring)."""
    found = read_measured_file(path)
    if isinstance(found, EngineBench):
        raise MeasuredFileError(path, "an engine bench file holds CPU figures, not GPU ones")
    return found


@dataclass(frozen=True)
class CpuMeasurement:
    """The engine bench's file and the entry the CPU rows use."""

    bench: EngineBench
    run: EngineRun
    source: str


def cpu_measurement(path: Path, bench: EngineBench, engine: str = "llamacpp") -> CpuMeasurement:
    run = bench.run(engine)
    if run is None:
        found = ", ".join(r.name for r in bench.engines)
        raise MeasuredFileError(
            path, f"no '{engine}' entry among the engines (found: {found}); the CPU rows need the llama.cpp figures"
        )
    return CpuMeasurement(bench=bench, run=run, source=str(path))
