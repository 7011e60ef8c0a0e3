"""The evaluation harness: scoring rules, a scripted client through the real question flow
(execution accuracy, exact match, validity, retries, by difficulty, McNemar, reports), the
shipped set's gold SQL, and one run of the CLI on the offline model."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from inference.eval import (
    EvalConfig,
    EvalError,
    Example,
    ItemResult,
    by_difficulty,
    compare,
    database_path,
    evaluate,
    load_dataset,
    main,
    markdown,
    report,
    write_reports,
)
from inference.eval_metrics import exact_match, execution_match, mcnemar, normalize_sql, percentile
from inference.eval_samples import SHIPPED, build, write_tables
from inference.protocol import GenerateRequest, GenerateResponse

# --- scoring ----------------------------------------------------------------------------------


def test_execution_match_follows_spider_semantics() -> None:
    gold = [("Ada", 3), ("Bo", 1), ("Cy", 2)]
    assert execution_match([("Cy", 2), ("Ada", 3), ("Bo", 1)], gold, order_matters=False)
    assert not execution_match([("Cy", 2), ("Ada", 3), ("Bo", 1)], gold, order_matters=True)
    assert execution_match([(3, "Ada"), (1, "Bo"), (2, "Cy")], gold, order_matters=True)  # columns permuted
    assert not execution_match([("Ada", 3), ("Bo", 1)], gold, order_matters=False)  # a row missing
    assert not execution_match([("Ada",), ("Bo",), ("Cy",)], gold, order_matters=False)  # a column missing
    assert not execution_match([(1,), (1,), (2,)], [(1,), (2,), (2,)], order_matters=False)  # multisets
    assert not execution_match(
        [("Ada", 1), ("Bo", 3)], [("Ada", 3), ("Bo", 1)], order_matters=False
    )  # rows, not columns
    assert execution_match([], [], order_matters=True)
    assert execution_match([(0.1 + 0.2,)], [(0.3,)], order_matters=False)  # float noise of SUM order
    assert execution_match([(3,)], [(3.0,)], order_matters=False)
    assert not execution_match([(3.01,)], [(3.0,)], order_matters=False)


def test_normalized_exact_match() -> None:
    assert normalize_sql("SELECT  COUNT( * )\nFROM t ;") == "select count(*) from t"
    assert exact_match('select name from t where x = "a"', "SELECT name FROM t WHERE x = 'a'")
    assert not exact_match("SELECT name FROM t", "SELECT name FROM t LIMIT 1")
    assert not exact_match("", "")


def test_mcnemar_known_values() -> None:
    assert mcnemar(0, 0).p_value == 1.0
    assert mcnemar(0, 6).p_value == 0.03125  # 2 * 0.5**6
    assert mcnemar(1, 9).p_value == 0.021484375  # 2 * (1 + 10) / 1024
    assert mcnemar(2, 2).p_value == 1.0
    assert mcnemar(5, 5).method == "exact binomial"
    large = mcnemar(10, 30)  # chi-square with continuity correction: (|10 - 30| - 1)² / 40
    assert large.method.startswith("chi-square") and large.statistic == pytest.approx(9.025)
    assert large.p_value == pytest.approx(0.0026631, abs=1e-6)
    assert mcnemar(30, 10).p_value == large.p_value


def test_percentile() -> None:
    assert percentile([], 0.5) is None
    assert percentile([5.0], 0.99) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.5) == 3.0
    assert percentile([float(i) for i in range(1, 101)], 0.99) == pytest.approx(99.01)


def test_configurations_from_files_and_inline(tmp_path: Path) -> None:
    base = EvalConfig(prompt_format="schema", schema_budget=1500)
    inline = base.updated("name=seed-arm, adapter=seed, prompt_format=seed, schema_budget=800, retry=off")
    assert inline == EvalConfig(name="seed-arm", adapter="seed", prompt_format="seed", schema_budget=800, retry=False)
    (tmp_path / "b.yaml").write_text("prompt_format: schema\nretry: on\nschema_budget: 600\n")
    assert base.updated(str(tmp_path / "b.yaml")) == EvalConfig(name="b", schema_budget=600)
    (tmp_path / "c.json").write_text(json.dumps({"adapter": "v2", "retry": False}))
    assert base.updated(str(tmp_path / "c.json")).adapter == "v2"
    with pytest.raises(EvalError, match="unknown configuration keys: temperature"):
        base.updated("temperature=0")
    with pytest.raises(EvalError, match="retry must be on or off"):
        base.updated("retry=maybe")


# --- the harness on a scripted client ------------------------------------------------------------

# question -> (first answer, answer to the retry)
SCRIPT: dict[str, tuple[str, str]] = {
    "How many items are there?": ("select count(*) from items;", "unused"),
    "List the item names.": ("SELECT nme FROM items", "SELECT name FROM items ORDER BY id"),
    "Which item is the most expensive?": ("SELECT name FROM items ORDER BY price ASC LIMIT 1", "unused"),
    "List items and prices, cheapest first.": ("SELECT price, name FROM items ORDER BY price", "unused"),
    "How many items cost more than 2?": ("DELETE FROM items", "DROP TABLE items"),
}
GOLD = [
    ("easy", "How many items are there?", "SELECT COUNT(*) FROM items"),
    ("easy", "List the item names.", "SELECT name FROM items"),
    ("hard", "Which item is the most expensive?", "SELECT name FROM items ORDER BY price DESC LIMIT 1"),
    ("hard", "List items and prices, cheapest first.", "SELECT name, price FROM items ORDER BY price"),
    ("extra", "How many items cost more than 2?", "SELECT COUNT(*) FROM items WHERE price > 2"),
]


class ScriptedClient:
    def __init__(self) -> None:
        self.requests: list[GenerateRequest] = []

    async def generate(self, request: GenerateRequest) -> GenerateResponse:
        self.requests.append(request)
        first, retry = SCRIPT[request.question]
        sql = retry if request.previous is not None else first
        return GenerateResponse(
            sql=sql,
            raw_output=sql,
            adapter=request.adapter,
            prompt_format=request.prompt_format or "schema",
            prompt_tokens=100,
            completion_tokens=10,
            latency_ms=2.0,
            queue_ms=0.0,
            cold_start=False,
        )

    async def close(self) -> None:
        pass


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A five-question Spider-format set on one small database."""
    from inference.eval_samples import spider_tables

    folder = tmp_path / "shop_set"
    db = database_path(folder, "shop")
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.executescript(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL NOT NULL);"
        "INSERT INTO items VALUES (1, 'pen', 1.5), (2, 'book', 12.0), (3, 'mug', 4.25), (4, 'cap', 3.0);"
    )
    conn.commit()
    conn.close()
    (folder / "tables.json").write_text(json.dumps([spider_tables(db, "shop")]))
    items = [{"db_id": "shop", "difficulty": d, "question": q, "query": s} for d, q, s in GOLD]
    (folder / "dev.json").write_text(json.dumps(items))
    return folder


def _run(folder: Path, *configs: EvalConfig) -> tuple[list[list[ItemResult]], ScriptedClient]:
    client = ScriptedClient()
    runs = asyncio.run(evaluate(load_dataset(folder), data=folder, client=client, configs=configs))
    return runs, client


def test_harness_scores_a_scripted_client(shop: Path) -> None:
    config = EvalConfig(name="on", adapter="v2", prompt_format="schema", schema_budget=300)
    (results,), client = _run(shop, config)
    assert [(r.execution_match, r.exact_match, r.valid, r.retried, r.model_calls) for r in results] == [
        (True, True, True, False, 1),
        (True, False, True, True, 2),  # guard refusal, then a correct retry (gold has no ORDER BY)
        (False, False, True, False, 1),  # valid but the wrong row
        (True, False, True, False, 1),  # columns swapped, same ordered rows
        (False, False, False, True, 2),  # refused twice: no answer
    ]
    assert results[4].verdict == "read_only" and results[4].error_kind == "GuardRejected"
    assert results[1].answer_sql is not None and results[1].answer_sql.startswith("SELECT name FROM items ORDER BY id")
    assert results[1].sql == "SELECT name FROM items ORDER BY id"
    # The production request: the configuration's adapter and format, the schema, then a retry.
    assert len(client.requests) == 7 and all(r.adapter == "v2" and r.prompt_format == "schema" for r in client.requests)
    assert "items" in client.requests[0].database.schema_text and client.requests[0].previous is None
    assert client.requests[2].previous is not None and client.requests[2].previous.sql == "SELECT nme FROM items"
    summary = by_difficulty(results)
    assert list(summary) == ["all", "easy", "hard", "extra"]
    everything = summary["all"]
    assert (everything.n, everything.execution_accuracy, everything.exact_match) == (5, 0.6, 0.2)
    assert (everything.valid_sql_rate, everything.retry_rate) == (0.8, 0.4)
    assert everything.mean_prompt_tokens == 140 and everything.mean_completion_tokens == 14
    assert everything.latency_p50_ms is not None and everything.latency_p99_ms is not None
    assert 0 < everything.latency_p50_ms <= everything.latency_p99_ms
    assert everything.verdicts == {"accepted": 4, "read_only": 1}
    easy, hard, extra = summary["easy"], summary["hard"], summary["extra"]
    assert (easy.execution_accuracy, easy.exact_match, easy.retry_rate) == (1.0, 0.5, 0.5)
    assert (hard.execution_accuracy, hard.valid_sql_rate, hard.retry_rate) == (0.5, 1.0, 0.0)
    assert (extra.execution_accuracy, extra.valid_sql_rate, extra.retry_rate) == (0.0, 0.0, 1.0)


def test_compare_retry_on_and_off(shop: Path, tmp_path: Path) -> None:
    on, off = EvalConfig(name="retry-on"), EvalConfig(name="retry-off", retry=False)
    (a, b), client = _run(shop, on, off)
    assert len(client.requests) == 7 + 5  # with retry off the model is asked once per question
    assert [r.execution_match for r in b] == [True, False, False, True, False]
    assert by_difficulty(b)["all"].retry_rate == 0.0 and by_difficulty(b)["all"].valid_sql_rate == 0.6
    test = compare(a, b)
    assert (test.only_a, test.only_b, test.p_value, test.method) == (1, 0, 1.0, "exact binomial")
    result = report(data=shop, configs=[on, off], runs=[a, b], elapsed_s=1.0)
    assert result["comparison"]["execution_accuracy_difference"] == -0.2
    md_path = write_reports(result, tmp_path / "out" / "report.json")
    assert md_path == tmp_path / "out" / "report.md"
    stored = json.loads((tmp_path / "out" / "report.json").read_text())
    assert stored["questions"] == 5 and stored["runs"][1]["config"]["retry"] is False
    assert stored["runs"][0]["summary"]["easy"]["execution_accuracy"] == 1.0
    assert len(stored["runs"][0]["items"]) == 5 and stored["runs"][0]["items"][1]["retried"] is True
    text = md_path.read_text()
    assert text == markdown(result)
    assert "| all | 5 | 60.0% | 20.0% | 80.0% | 40.0% |" in text
    assert "| extra | 1 | 0.0% | 0.0% | 0.0% | 100.0% |" in text
    assert "McNemar (exact binomial): only retry-on right 1, only retry-off right 0" in text
    assert "p = 1.0000" in text


def test_dataset_errors(shop: Path) -> None:
    assert [e.question for e in load_dataset(shop, limit=2)] == [q for _, q, _ in GOLD[:2]]
    assert load_dataset(shop)[0] == Example(db_id="shop", question=GOLD[0][1], query=GOLD[0][2], difficulty="easy")
    database_path(shop, "shop").unlink()
    with pytest.raises(EvalError, match=r"shop\.sqlite is missing"):
        load_dataset(shop)
    with pytest.raises(EvalError, match="cannot read"):
        load_dataset(shop / "nowhere")


# --- the shipped set ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("eval") / "samples")


def test_shipped_gold_sql_runs_and_returns_rows(shipped: Path) -> None:
    examples = load_dataset(shipped)
    assert len(examples) >= 40
    assert {e.db_id for e in examples} == {"sales_db", "ecommerce_db", "hr_db"}
    assert {e.difficulty for e in examples} == {"easy", "medium", "hard", "extra"}
    assert len({(e.db_id, e.question) for e in examples}) == len(examples)
    for e in examples:
        assert "now" not in e.query.lower(), "no date-relative gold SQL"
        conn = sqlite3.connect(f"file:{database_path(shipped, e.db_id)}?mode=ro", uri=True)
        try:
            rows = conn.execute(e.query).fetchall()
        finally:
            conn.close()
        assert rows and any(v is not None for v in rows[0]), e.question


def test_shipped_tables_json_matches_the_databases(shipped: Path, tmp_path: Path) -> None:
    write_tables(shipped)  # regenerated from the built databases
    assert json.loads((shipped / "tables.json").read_text()) == json.loads((SHIPPED / "tables.json").read_text())


def test_cli_on_the_offline_model(
    embedded_model: Path,
    shipped: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CHAT2SQL_MODEL", str(embedded_model))
    monkeypatch.setenv("CHAT2SQL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CHAT2SQL_DTYPE", "float32")
    out = tmp_path / "report.json"
    assert main(["--data", str(shipped), "--limit", "3", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    items = result["runs"][0]["items"]
    assert result["questions"] == 3 and len(items) == 3
    assert all(i["model_calls"] >= 1 and i["sql"] and i["latency_ms"] > 0 for i in items)
    # Three easy counting and listing questions: the 0.5B model gets them right given the schema.
    assert sum(i["execution_match"] for i in items) >= 2
    assert "| all | 3 |" in out.with_suffix(".md").read_text()
    assert "[default 3/3]" in capsys.readouterr().err
