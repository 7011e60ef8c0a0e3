"""The offline Qwen2.5-Coder-0.5B end to end: registry → schema prompt → worker HTTP API
(real key, real limiter) → guard → read-only preview, over the sample SQLite database."""

from __future__ import annotations

import threading
from pathlib import Path

from fastapi.testclient import TestClient

from chat2sql.settings import Settings
from inference.engine import Engine, EngineConfig
from inference.keys import KeyStore
from inference.wiring import build_worker_app
from schemas.preview import ReadOnlyRunner, run_checked
from schemas.registry import Registry
from schemas.render import render_schema

QUESTIONS: list[tuple[str, set[tuple[str, ...]]]] = [
    ("How many employees are there?", {("7",)}),
    ("What is the name of the employee with the highest salary?", {("Ada",)}),
    ("What is the total budget of all departments?", {("870000",)}),
    ("List the names of the employees hired after 2023-01-01.", {("Dee",), ("Émile",), ("Fay",)}),
    ("Which department has no budget? Give its name.", {("Légal",)}),
    (
        "How many employees does each department have? Show the department name and the count.",
        {("2", "Engineering"), ("2", "Sales"), ("2", "Support")},
    ),
]


def _norm(row: list[object]) -> tuple[str, ...]:
    out = []
    for value in row:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        out.append(str(value))
    return tuple(sorted(out))


def test_offline_model_answers_through_the_api(embedded_model: Path, settings: Settings, sqlite_url: str) -> None:
    registry = Registry.open(settings)
    entry = registry.add("hr", sqlite_url, registered_by="test")
    key = KeyStore.open(settings).create("integration", "internal")
    app = build_worker_app(settings, load_engine=lambda: Engine.load(EngineConfig(model_path=embedded_model)))
    runner = ReadOnlyRunner(url=registry.connection_url("hr"))
    correct, answers = 0, []
    with TestClient(app) as client:
        for _ in range(600):
            if client.get("/readyz").status_code == 200:
                break
            threading.Event().wait(0.1)
        for question, expected in QUESTIONS:
            body = {
                "question": question,
                "database": {
                    "name": "hr",
                    "dialect": "sqlite",
                    "schema_text": render_schema(entry.schema, question=question, max_tokens=1500),
                },
            }
            response = client.post("/v1/generate", json=body, headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == 200, response.text
            sql = response.json()["sql"]
            out = run_checked(sql, entry.schema, runner, max_rows=50, timeout_s=5)
            got = {_norm(r) for r in out.get("rows", [])}  # type: ignore[union-attr]
            answers.append((question, sql, out.get("rule"), got))
            correct += out["ok"] is True and got == expected
    runner.close()
    registry.close()
    print(f"{correct}/{len(QUESTIONS)} correct", *answers, sep="\n")
    assert correct >= 4, "\n".join(map(str, answers))
