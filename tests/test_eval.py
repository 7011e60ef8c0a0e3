"""The evaluation harness: scoring rules, a scripted client through the real question flow
(execution accuracy, exact match, validity, retries, by difficulty, McNemar, reports), the
shipped set's gold SQL, and one run of the CLI on the offline model."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from evals.data import EvalConfig, EvalError, Example, database_path, load_dataset
from evals.harness import evaluate, main
from evals.metrics import exact_match, execution_match, hardness, mcnemar, normalize_sql, percentile
from evals.report import ItemResult, by_difficulty, compare, markdown, report, write_reports
from evals.samples import SHIPPED, build, write_tables
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
    with pytest.raises(EvalError, match="temperature must be above 0"):  # a key now; 0 is out of its range
        base.updated("temperature=0")
    with pytest.raises(EvalError, match="unknown configuration keys: top_p"):
        base.updated("top_p=0")
    with pytest.raises(EvalError, match="retry must be on or off"):
        base.updated("retry=maybe")


# --- the harness on a scripted client ------------------------------------------------------------

# question -> (first answer, answer to the retry)
SCRIPT: dict[str, tuple[str, str]] = {
    "How many items are there?": ("select count(*) from items;", "unused"),
    "List the item names.": ("SELECT label FROM items", "SELECT name FROM items ORDER BY id"),
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
        first, retry = SCRIPT.get(request.question, ("SELECT 1", "SELECT 1"))  # the CLI's warm-up question
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
    from evals.samples import spider_tables

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
    assert client.requests[2].previous is not None and client.requests[2].previous.sql == "SELECT label FROM items"
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
    # No SQL for the user: only the question refused twice.
    assert (everything.no_answer_rate, easy.no_answer_rate, hard.no_answer_rate, extra.no_answer_rate) == (
        0.2,
        0.0,
        0.0,
        1.0,
    )
    # Distinct SQL texts the model gave: one per call, two where the retry answered otherwise.
    assert [r.candidates for r in results] == [1, 2, 1, 1, 2] and everything.mean_candidates == 1.4


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
    assert "| all | 5 | 60.0% | 20.0% | 80.0% | 40.0% | 20.0% | 20.0% |" in text  # … clarified, no answer
    assert stored["runs"][0]["summary"]["all"]["no_answer_rate"] == 0.2
    assert stored["runs"][1]["summary"]["extra"]["no_answer_rate"] == 1.0
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


# --- no side effects: the configured registry, bot state, Redis and tracing stay untouched ----------


def _cli_client(monkeypatch: pytest.MonkeyPatch) -> list[ScriptedClient]:
    """The CLI with the scripted client in place of the configured backend (no model)."""
    import bot.wiring

    made: list[ScriptedClient] = []

    def scripted(settings: object) -> ScriptedClient:
        made.append(ScriptedClient())
        return made[-1]

    monkeypatch.setattr(bot.wiring, "inference_client", scripted)
    return made


@pytest.mark.parametrize("existing", [False, True], ids=["no-registry-yet", "registry-with-the-database"])
def test_cli_never_touches_the_configured_state(
    shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    import hashlib
    import tempfile

    from chat2sql.settings import Settings
    from schemas.registry import Registry

    real = tmp_path / "real"
    real.mkdir()
    registry_file = real / "registry.db"
    url = f"sqlite:///{registry_file}"
    if existing:  # the bug: the harness registered "shop" here, and the next run died of DuplicateDatabase
        registry = Registry.open(Settings(data_dir=real / "data", registry_url=url, _env_file=None))  # type: ignore[call-arg]
        registry.add("shop", f"sqlite:///{database_path(shop, 'shop')}", registered_by="someone")
        registry.close()
    before = hashlib.sha256(registry_file.read_bytes()).hexdigest() if existing else None
    monkeypatch.setenv("CHAT2SQL_REGISTRY_URL", url)
    monkeypatch.setenv("CHAT2SQL_DATA_DIR", str(real / "state"))
    monkeypatch.setenv("CHAT2SQL_SECRET_KEY", "not-a-fernet-key")  # used, it would fail the run
    monkeypatch.setenv("CHAT2SQL_REDIS_URL", "redis://127.0.0.1:9/0")  # nothing listens: used, it would fail
    monkeypatch.setenv("CHAT2SQL_ALLOWED_DB_HOSTS", "db.internal")  # would refuse the SQLite files
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-test")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-test")
    monkeypatch.setenv("LANGFUSE_HOST", "http://127.0.0.1:9")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the throw-away registry goes
    made = _cli_client(monkeypatch)
    out = tmp_path / "report.json"
    for _ in range(2):  # a second run in a row works as well as the first
        assert main(["--data", str(shop), "--out", str(out), "--compare", "name=a", "name=b,retry=off"]) == 0
        stored = json.loads(out.read_text())
        assert [len(run["items"]) for run in stored["runs"]] == [5, 5]
        assert stored["runs"][0]["summary"]["all"]["execution_accuracy"] == 0.6
    assert len(made) == 2 and all(len(c.requests) == 1 + 7 + 5 for c in made)  # warm-up, retry on, retry off
    if existing:
        assert hashlib.sha256(registry_file.read_bytes()).hexdigest() == before
    else:
        assert not registry_file.exists()
    assert not (real / "state").exists() and sorted(p.name for p in real.iterdir()) == (
        ["registry.db"] if existing else []
    )
    assert list(scratch.iterdir()) == []  # the temporary registry is gone


def test_evaluate_ignores_the_environment(shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evals.harness import isolated_settings

    monkeypatch.setenv("CHAT2SQL_REGISTRY_URL", f"sqlite:///{tmp_path / 'real.db'}")
    monkeypatch.setenv("CHAT2SQL_REDIS_URL", "redis://127.0.0.1:9/0")
    monkeypatch.setenv("CHAT2SQL_SAMPLE_VALUES", "0")
    settings = isolated_settings(tmp_path / "work")
    assert settings.uses_embedded_registry and settings.effective_registry_url.endswith("work/registry.db")
    assert settings.redis_url is None and settings.sample_values == 5 and settings.secret_key is None
    (a,), _ = _run(shop, EvalConfig())
    (b,), _ = _run(shop, EvalConfig())
    assert [r.execution_match for r in a] == [r.execution_match for r in b] == [True, True, False, True, False]
    assert not (tmp_path / "real.db").exists()


# --- a bad data folder or configuration: one error line, exit 2 ------------------------------------


def _write(path: Path, value: object) -> None:
    path.write_text(value if isinstance(value, str) else json.dumps(value))


def _items(folder: Path) -> list[dict[str, object]]:
    return list(json.loads((folder / "dev.json").read_text()))


BAD_DATA: dict[str, tuple[Callable[[Path], object], list[str], str]] = {
    "missing folder": (lambda f: f.rename(f.with_name("gone")), [], "no such folder"),
    "missing dev.json": (lambda f: (f / "dev.json").unlink(), [], "dev.json: no such file"),
    "missing tables.json": (lambda f: (f / "tables.json").unlink(), [], "tables.json: no such file"),
    "malformed dev.json": (lambda f: _write(f / "dev.json", '[{"db_id": "shop",'), [], "dev.json: not valid JSON"),
    "malformed tables.json": (lambda f: _write(f / "tables.json", "{]"), [], "tables.json: not valid JSON"),
    "dev.json not a list": (lambda f: _write(f / "dev.json", {"db_id": "shop"}), [], "expected a list of questions"),
    "tables.json not a list": (lambda f: _write(f / "tables.json", "3"), [], "expected a list of database"),
    "tables.json entry without db_id": (lambda f: _write(f / "tables.json", [{}]), [], "entry 0: no db_id"),
    "item not an object": (lambda f: _write(f / "dev.json", ["SELECT 1"]), [], "item 0: expected an object"),
    "item without query": (
        lambda f: _write(f / "dev.json", [{k: v for k, v in i.items() if k != "query"} for i in _items(f)]),
        [],
        "item 0: missing 'query'",
    ),
    "item with an empty question": (
        lambda f: _write(f / "dev.json", [{**_items(f)[0], "question": " "}]),
        [],
        "item 0: 'question' must be non-empty text",
    ),
    "item with a numeric db_id": (
        lambda f: _write(f / "dev.json", [*_items(f), {**_items(f)[0], "db_id": 7}]),
        [],
        "item 5: 'db_id' must be non-empty text",
    ),
    "item with a numeric difficulty": (
        lambda f: _write(f / "dev.json", [{**_items(f)[0], "difficulty": 3}]),
        [],
        "item 0: 'difficulty' must be text",
    ),
    "unknown db_id": (
        lambda f: _write(f / "dev.json", [*_items(f), {**_items(f)[0], "db_id": "nope"}]),
        [],
        "nope is not in",
    ),
    "missing .sqlite": (lambda f: database_path(f, "shop").unlink(), [], "shop.sqlite is missing"),
    "empty set": (lambda f: _write(f / "dev.json", []), [], "has no questions"),
    "--limit 0": (lambda f: None, ["--limit", "0"], "--limit must be at least 1, not 0"),
    "--limit negative": (lambda f: None, ["--limit", "-3"], "--limit must be at least 1, not -3"),
    "unknown config key": (lambda f: None, ["--config", "top_p=0.9"], "unknown configuration keys: top_p"),
    "config flag": (lambda f: None, ["--config", "retry=maybe"], "retry must be on or off"),
    "config not key=value": (lambda f: None, ["--config", "fast"], "expected key=value pairs"),
    "config budget not a number": (lambda f: None, ["--config", "schema_budget=lots"], "schema_budget must be a"),
    "config candidates negative": (lambda f: None, ["--config", "candidates=-1"], "candidates must be a whole"),
    "config missing file": (lambda f: None, ["--config", "nowhere.yaml"], "nowhere.yaml: no such file"),
    "config file malformed": (
        lambda f: _write(f / "bad.yaml", "retry: [on"),
        ["--config", "{folder}/bad.yaml"],
        "is not valid YAML or JSON",
    ),
    "config file a list": (
        lambda f: _write(f / "list.json", ["retry"]),
        ["--config", "{folder}/list.json"],
        "a configuration file holds one mapping",
    ),
    "bad config in --compare": (lambda f: None, ["--compare", "name=a", "temperature=hot"], "temperature must be"),
    "glossary.json malformed": (lambda f: _write(f / "glossary.json", "[{"), [], "glossary.json: not valid JSON"),
    "glossary entry of an unknown database": (
        lambda f: _write(f / "glossary.json", [{"db_id": "nope", "kind": "term", "name": "x", "definition": "y"}]),
        [],
        "entry 0: nope is not in",
    ),
    "glossary entry without a definition": (
        lambda f: _write(f / "glossary.json", [{"db_id": "shop", "kind": "term", "name": "x"}]),
        [],
        "entry 0: 'definition' must be non-empty text",
    ),
    "--recall not numbers": (lambda f: None, ["--recall", "big"], "--recall takes token budgets"),
}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_data_is_one_error_line(
    case: str, shop: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import bot.wiring

    def no_model(settings: object) -> None:
        raise AssertionError("the model must not be loaded for data that cannot be used")

    monkeypatch.setattr(bot.wiring, "inference_client", no_model)
    monkeypatch.setenv("CHAT2SQL_DATA_DIR", str(shop.parent / "state"))
    monkeypatch.chdir(shop.parent)
    mutate, extra, expected = BAD_DATA[case]
    mutate(shop)
    assert main(["--data", str(shop), *(a.replace("{folder}", str(shop)) for a in extra)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], captured.err
    assert "Traceback" not in captured.err and captured.out == ""


# --- Spider's hardness ------------------------------------------------------------------------------

# (gold SQL, Spider's level, why): counts as in Spider's evaluation.py, c1 = count_component1,
# c2 = count_component2, o = count_others. The first twelve are Spider dev queries
# (concert_singer, pets_1) with the level Spider's evaluation gives them; the last ones pin the
# quirks of its counting on small queries of the same shape.
HARDNESS = [
    ("SELECT count(*) FROM singer", "easy", "c1 0, o 0: one aggregate, one column"),
    ("SELECT DISTINCT country FROM singer WHERE age > 20", "easy", "c1 1 (WHERE), o 0"),
    ("SELECT name, country, age FROM singer ORDER BY age DESC", "medium", "c1 1 (ORDER BY), o 1 (3 columns)"),
    (
        "SELECT avg(age), min(age), max(age) FROM singer WHERE country = 'France'",
        "medium",
        "c1 1, o 2 (3 aggregates; 3 columns): o <= 2 and c1 <= 1",
    ),
    ("SELECT count(*) FROM concert WHERE YEAR = 2014 OR YEAR = 2015", "medium", "c1 2 (WHERE, OR), o 1 (2 conditions)"),
    ("SELECT name, country FROM singer WHERE song_name LIKE '%Hey%'", "medium", "c1 2 (WHERE, LIKE), o 1 (2 columns)"),
    (
        "SELECT T2.name, count(*) FROM concert AS T1 JOIN stadium AS T2 ON T1.stadium_id = T2.stadium_id "
        "GROUP BY T1.stadium_id",
        "medium",
        "c1 2 (GROUP BY, one join), o 1 (2 columns)",
    ),
    (
        "SELECT YEAR FROM concert GROUP BY YEAR ORDER BY count(*) DESC LIMIT 1",
        "hard",
        "c1 3 (GROUP, ORDER, LIMIT), o 0",
    ),
    ("SELECT song_name FROM singer WHERE age > (SELECT avg(age) FROM singer)", "hard", "c1 1, o 0, c2 1 (subquery)"),
    (
        "SELECT country FROM singer WHERE age > 40 INTERSECT SELECT country FROM singer WHERE age < 30",
        "hard",
        "c1 1 (the first query's WHERE), c2 1 (INTERSECT), o 0",
    ),
    (
        "SELECT T2.name FROM singer_in_concert AS T1 JOIN singer AS T2 ON T1.singer_id = T2.singer_id "
        "JOIN concert AS T3 ON T1.concert_id = T3.concert_id WHERE T3.year = 2014",
        "hard",
        "c1 3 (WHERE, two joins), o 0",
    ),
    (
        "SELECT T2.name, T2.capacity FROM concert AS T1 JOIN stadium AS T2 ON T1.stadium_id = T2.stadium_id "
        "WHERE T1.year >= 2014 GROUP BY T2.stadium_id ORDER BY count(*) DESC LIMIT 1",
        "extra",
        "c1 5 (WHERE, GROUP, ORDER, LIMIT, one join)",
    ),
    (
        "SELECT name FROM stadium WHERE stadium_id NOT IN (SELECT stadium_id FROM concert)",
        "hard",
        "c1 1, c2 1; NOT IN is one 'aggregation' (Spider reads the NOT flag), not more than one: o 0",
    ),
    (
        "SELECT count(*) FROM student WHERE stuid NOT IN (SELECT T1.stuid FROM student AS T1 JOIN has_pet AS T2 "
        "ON T1.stuid = T2.stuid JOIN pets AS T3 ON T3.petid = T2.petid WHERE T3.pettype = 'cat')",
        "extra",
        "c1 1, c2 1, o 1: count(*) plus the NOT IN make two 'aggregations' (the subquery's joins do not count)",
    ),
    (
        "SELECT a FROM t GROUP BY a HAVING count(*) > 1 AND sum(b) > 2",
        "easy",
        "c1 1 (GROUP BY); HAVING's aggregates are not counted, its AND is: one 'aggregation', o 0",
    ),
    ("SELECT count(*) FROM t WHERE a IS NOT NULL", "easy", "IS NOT NULL is the IS operator, no NOT flag: o 0"),
    (
        "SELECT a, b FROM t WHERE a NOT IN (1, 2) AND b NOT LIKE 'x%'",
        "hard",
        "c1 2 (WHERE, LIKE), o 3 (two NOTs, 2 columns, 2 conditions): o > 2 and c1 <= 2",
    ),
    (
        "SELECT a FROM t1 UNION SELECT a FROM t2 INTERSECT SELECT a FROM t3",
        "hard",
        "the first query alone, c2 1: the rest is one nested query",
    ),
]


@pytest.mark.parametrize(
    ("sql", "level", "why"), HARDNESS, ids=[f"{level}-{i}" for i, (_, level, _) in enumerate(HARDNESS)]
)
def test_spider_hardness(sql: str, level: str, why: str) -> None:
    assert hardness(sql) == level, why


def test_hardness_fills_in_a_missing_difficulty(shop: Path) -> None:
    items = _items(shop)
    for item in items[1:]:
        del item["difficulty"]
    items[2]["hardness"] = "extra"  # Spider's own field, when present, wins
    items.append({"db_id": "shop", "question": "Odd?", "query": "SELECT FROM WHERE"})  # unparseable gold
    _write(shop / "dev.json", items)
    assert [e.difficulty for e in load_dataset(shop)] == ["easy", "easy", "extra", "medium", "easy", None]
    with pytest.raises(ValueError, match="not parseable"):
        hardness("SELECT FROM WHERE")


# --- the new configuration keys ----------------------------------------------------------------------


def test_new_configuration_keys(tmp_path: Path) -> None:
    base = EvalConfig()
    assert (base.candidates, base.temperature, base.values, base.glossary) == (0, 0.7, True, True)
    inline = base.updated("candidates=4, temperature=0.3, values=off, glossary=off")
    assert (inline.candidates, inline.temperature, inline.values, inline.glossary) == (4, 0.3, False, False)
    (tmp_path / "s.yaml").write_text("candidates: 2\ntemperature: 1\nvalues: off\n")
    from_file = base.updated(str(tmp_path / "s.yaml"))
    assert (from_file.candidates, from_file.temperature, from_file.values, from_file.glossary) == (2, 1.0, False, True)
    for spec, message in [
        ("candidates=9", "candidates must be a whole number from 0 to 8"),
        ("candidates=1.5", "candidates must be a whole number"),
        ("temperature=2.5", "temperature must be a number at most 2.0"),
        ("temperature=-1", "temperature must be above 0"),
        ("temperature=nan", "temperature must be"),
        ("glossary=perhaps", "glossary must be on or off"),
    ]:
        with pytest.raises(EvalError, match=message):
            base.updated(spec)
    (tmp_path / "b.yaml").write_text("candidates: on\n")
    with pytest.raises(EvalError, match="candidates must be a whole number"):
        base.updated(str(tmp_path / "b.yaml"))


def test_configuration_reaches_the_assistant_and_the_report(
    shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.state
    from bot.core.assistant import Assistant, AssistantConfig

    seen: list[AssistantConfig] = []

    class Watched(Assistant):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            seen.append(self.config)

    monkeypatch.setattr(bot.state, "Assistant", Watched)  # what the harness's assistant_over builds
    sampled = EvalConfig(name="sampled", candidates=3, temperature=0.4, values=False, glossary=False)
    (a, b), _ = _run(shop, EvalConfig(), sampled)
    assert [(c.candidates, c.temperature, c.value_links, c.glossary) for c in seen] == [
        (0, 0.7, True, True),
        (3, 0.4, False, False),
    ]
    result = report(data=shop, configs=[EvalConfig(), sampled], runs=[a, b], elapsed_s=1.0)
    assert result["runs"][1]["config"]["candidates"] == 3 and result["runs"][1]["config"]["values"] is False
    text = markdown(result)
    assert "candidates 0 (temperature 0.7), values on, glossary on" in text
    assert "candidates 3 (temperature 0.4), values off, glossary off" in text
    assert "| no answer |" in text


# --- sampled candidates --------------------------------------------------------------------------------


class SamplingClient(ScriptedClient):
    """The scripted answers, with sampled candidates beside them (duplicates included)."""

    async def generate(self, request: GenerateRequest) -> GenerateResponse:
        response = await super().generate(request)
        extra = {
            "How many items are there?": ["SELECT count(*) FROM items", "select  COUNT(*) from items", "SELECT 4"],
            "How many items cost more than 2?": ["DELETE FROM items WHERE price > 2", "DROP TABLE items"],
        }.get(request.question, [])
        return response.model_copy(update={"candidates": extra, "completion_tokens": 10 + 7 * len(extra)})


def test_candidates_are_counted_per_question(shop: Path) -> None:
    client = SamplingClient()
    (results,) = asyncio.run(evaluate(load_dataset(shop), data=shop, client=client, configs=[EvalConfig()]))
    # Distinct over greedy and sampled, case and spacing aside: the first question's three
    # spellings of count(*) are one, with SELECT 4 two; the last (refused, asked again) gave
    # DELETE, DELETE … WHERE and DROP TABLE over its two calls.
    assert [r.candidates for r in results] == [2, 2, 1, 1, 3]
    assert [r.model_calls for r in results] == [1, 2, 1, 1, 2]
    assert [r.completion_tokens for r in results] == [31, 20, 10, 10, 48]  # as the worker gave them, summed
    summary = by_difficulty(results)
    assert summary["all"].mean_candidates == 1.8 and summary["extra"].mean_candidates == 3.0


# --- the glossary --------------------------------------------------------------------------------------

GLOSSARY = [
    {"db_id": "shop", "kind": "term", "name": "item", "definition": "a product of the shop's catalogue"},
    {"db_id": "shop", "kind": "column", "name": "items.price", "definition": "the price in euros"},
]


class _FakeGlossary:
    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def define(self, database: str, kind: str | None, name: str, definition: str, *, by: str) -> None:
        self.calls.append((database, kind, name, definition, by))


def test_glossary_entries_are_defined_by_the_harness() -> None:
    from evals.data import GlossaryItem
    from evals.harness import define_glossary

    class Fake:
        glossary = _FakeGlossary()

    entries = [
        GlossaryItem(db_id=g["db_id"], kind=g["kind"], name=g["name"], definition=g["definition"]) for g in GLOSSARY
    ]
    assert define_glossary(Fake(), entries, {"shop": "shop_db"}) == 2
    assert Fake.glossary.calls == [
        ("shop_db", "term", "item", "a product of the shop's catalogue", "eval"),
        ("shop_db", "column", "items.price", "the price in euros", "eval"),
    ]


def test_glossary_on_and_off_per_configuration(shop: Path) -> None:
    _write(shop / "glossary.json", [*GLOSSARY, GLOSSARY[0]])  # the same definition twice is one entry
    on, off = EvalConfig(name="on"), EvalConfig(name="off", glossary=False)
    runs, client = _run(shop, on, off, EvalConfig(name="on-again"))
    assert [[r.execution_match for r in run] for run in runs] == [[True, True, False, True, False]] * 3
    assert len(client.requests) == 3 * 7
    by_config = [client.requests[i : i + 7] for i in (0, 7, 14)]
    for requests, glossary in zip(by_config, (True, False, True), strict=True):
        # The column's description is in the schema the model sees, the term in the notes.
        assert all(("the price in euros" in r.database.schema_text) is glossary for r in requests)
        assert all(any("a product of the shop's catalogue" in h for h in r.hints) is glossary for r in requests)


def test_glossary_entry_the_registry_refuses(shop: Path) -> None:
    _write(shop / "glossary.json", [{"db_id": "shop", "kind": "column", "name": "items.colour", "definition": "x"}])
    with pytest.raises(EvalError, match=re.escape("glossary.json: shop column 'items.colour': ")) as caught:
        _run(shop, EvalConfig())
    assert "\n" not in str(caught.value)
    (results,), _ = _run(shop, EvalConfig(glossary=False))  # off: the entries are not defined at all
    assert len(results) == 5


# --- comparing two saved reports -------------------------------------------------------------------------


def test_compare_two_saved_reports(shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evals import compare as eval_compare

    on, off = EvalConfig(name="retry-on"), EvalConfig(name="retry-off", retry=False)
    (a,), _ = _run(shop, on)
    (b,), _ = _run(shop, off)
    write_reports(report(data=shop, configs=[on], runs=[a], elapsed_s=1.0), tmp_path / "a.json")
    stored = report(data=shop, configs=[off], runs=[b], elapsed_s=1.0)
    stored["runs"][0]["items"].reverse()  # paired by index, not by position
    write_reports(stored, tmp_path / "b.json")
    assert eval_compare.main([str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    text = capsys.readouterr().out
    assert "**retry-off vs retry-on** on 5 paired questions: execution accuracy retry-on 60.0%, retry-off 40.0%" in text
    assert "(-20.0 points); McNemar (exact binomial): only retry-on right 1, only retry-off right 0" in text
    assert "| difficulty | n | EX retry-on | EX retry-off | difference | only retry-on | only retry-off | p |" in text
    assert "| all | 5 | 60.0% | 40.0% | -20.0 | 1 | 0 | 1.0000 |" in text
    assert "| easy | 2 | 100.0% | 50.0% | -50.0 | 1 | 0 | 1.0000 |" in text
    assert "| hard | 2 | 50.0% | 50.0% | +0.0 | 0 | 0 | 1.0000 |" in text
    assert "| extra | 1 | 0.0% | 0.0% | +0.0 | 0 | 0 | 1.0000 |" in text


def _fixture_item(index: int, difficulty: str, ex: bool, question: str | None = None) -> dict[str, object]:
    """An item as an older report stored it (no ``candidates``)."""
    return {
        "index": index, "db_id": "shop", "difficulty": difficulty, "question": question or f"q{index}",
        "gold": "SELECT 1", "sql": "SELECT 1", "answer_sql": "SELECT 1 LIMIT 100000", "verdict": "accepted",
        "error_kind": None, "valid": True, "execution_match": ex, "exact_match": ex, "retried": False,
        "model_calls": 1, "latency_ms": 10.0, "generation_ms": 8.0, "prompt_tokens": 100, "completion_tokens": 10,
        "future_field": "ignored",
    }  # fmt: skip


def _fixture_report(path: Path, name: str, marks: list[tuple[str, bool]], **changes: object) -> Path:
    items = [_fixture_item(i, d, ex) for i, (d, ex) in enumerate(marks)]
    run = {"config": {"name": name}, "summary": {}, "items": items, **changes}
    path.write_text(json.dumps({"data": "x", "questions": len(items), "elapsed_s": 1.0, "runs": [run]}))
    return path


def test_compare_fixture_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evals import compare as eval_compare

    # B right where A was wrong on 7 medium questions, A right alone on none: exact p = 2 * 0.5**7.
    a = _fixture_report(tmp_path / "a.json", "base", [("easy", True)] * 3 + [("medium", False)] * 7)
    b = _fixture_report(tmp_path / "b.json", "base", [("easy", True)] * 3 + [("medium", True)] * 7)
    assert eval_compare.main([str(a), str(b)]) == 0
    text = capsys.readouterr().out
    assert "**b:base vs a:base** on 10 paired questions" in text  # the same name: told apart by file
    assert "| all | 10 | 30.0% | 100.0% | +70.0 | 0 | 7 | 0.0156 |" in text
    assert "| easy | 3 | 100.0% | 100.0% | +0.0 | 0 | 0 | 1.0000 |" in text
    assert "| medium | 7 | 0.0% | 100.0% | +100.0 | 0 | 7 | 0.0156 |" in text
    result = eval_compare.paired_comparison(eval_compare.load_run(a), eval_compare.load_run(b))
    assert result["by_difficulty"]["all"]["mcnemar"]["p_value"] == 0.015625


@pytest.mark.parametrize(
    ("make_b", "argv", "expected"),
    [
        (lambda p: _fixture_report(p, "b", [("easy", True)] * 2), [], "different questions (1 only in a"),
        (lambda p: p.write_text(json.dumps({"runs": []})), [], "not an evaluation report"),
        (lambda p: p.write_text("{"), [], "not valid JSON"),
        (lambda p: _fixture_report(p, "b", [("easy", True)] * 3), ["--run-b", "2"], "has 1 run(s): no run 2"),
        (lambda p: _fixture_report(p, "b", [("easy", True)] * 3, items=[{"index": 0}]), [], "not evaluation results"),
        (lambda p: p.unlink() if p.exists() else None, [], "no such file"),
    ],
)
def test_compare_refuses_reports_it_cannot_pair(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make_b: object, argv: list[str], expected: str
) -> None:
    from evals import compare as eval_compare

    a = _fixture_report(tmp_path / "a.json", "a", [("easy", True)] * 3)
    b = tmp_path / "b.json"
    make_b(b)  # type: ignore[operator]
    assert eval_compare.main([str(a), str(b), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err, err


def test_compare_refuses_different_questions_at_an_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evals import compare as eval_compare

    a = _fixture_report(tmp_path / "a.json", "a", [("easy", True)] * 2)
    b = tmp_path / "b.json"
    stored = json.loads(a.read_text())
    stored["runs"][0]["items"][1]["question"] = "something else"
    b.write_text(json.dumps(stored))
    assert eval_compare.main([str(a), str(b)]) == 2
    assert "question 1 differs between the reports" in capsys.readouterr().err


def test_configuration_defaults_follow_the_bot_settings() -> None:
    from chat2sql.settings import Settings

    settings = Settings(candidates=2, candidate_temperature=0.3, value_links=False, _env_file=None)  # type: ignore[call-arg]
    config = EvalConfig.from_settings(settings)
    assert (config.candidates, config.temperature, config.values, config.glossary) == (2, 0.3, False, True)
    assert EvalConfig.from_settings(Settings(_env_file=None)).candidates == 4  # type: ignore[call-arg]


# --- replay: today's pipeline on a report's recorded model answers ------------------------------


def test_replay_reproduces_a_live_run_without_the_model(
    shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    made = _cli_client(monkeypatch)
    live = tmp_path / "live.json"
    assert main(["--data", str(shop), "--out", str(live)]) == 0
    recorded = json.loads(live.read_text())["runs"][0]["items"]
    assert recorded[1]["attempts"] == [["SELECT label FROM items"], ["SELECT name FROM items ORDER BY id"]]
    replayed = tmp_path / "replayed.json"
    assert main(["--data", str(shop), "--out", str(replayed), "--replay", str(live)]) == 0
    assert len(made) == 1  # the replay made no client of the configured backend
    again = json.loads(replayed.read_text())
    assert [i["execution_match"] for i in again["runs"][0]["items"]] == [i["execution_match"] for i in recorded]
    assert [i["attempts"] for i in again["runs"][0]["items"]] == [i["attempts"] for i in recorded]
    assert again["replay"] == {"report": str(live), "unrecorded_calls": 0}
    # Retry off asks once: the recorded second answers are never used, nothing is unrecorded.
    assert main(["--data", str(shop), "--out", str(replayed), "--replay", str(live), "--config", "retry=off"]) == 0
    matches = [i["execution_match"] for i in json.loads(replayed.read_text())["runs"][0]["items"]]
    assert matches == [True, False, False, True, False]


def test_replay_counts_the_calls_it_has_no_recording_for(shop: Path) -> None:
    from evals.replay import Recording, ReplayClient

    (results,), _ = _run(shop, EvalConfig(name="live"))
    # Only the first call of each question was recorded: a retry gets that answer again.
    client = ReplayClient(Recording("shop", r.question, r.attempts[:1]) for r in results)
    (replayed,) = asyncio.run(evaluate(load_dataset(shop), data=shop, client=client, configs=[EvalConfig()]))
    assert client.unrecorded == 2  # the two questions the live run retried
    assert [r.execution_match for r in replayed] == [True, False, False, True, False]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("not json", "not valid JSON"),
        ('{"runs": []}', "is not a report of python -m inference.eval"),
        ('{"runs": [{"items": [{"db_id": "shop", "question": "q", "index": 0}]}]}', "no item has attempts"),
    ],
)
def test_replay_of_a_bad_report_is_one_error_line(
    shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, expected: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["--data", str(shop), "--replay", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and expected in err and "\n" not in err


def test_replay_of_a_report_on_other_questions(shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.json"
    item = {"db_id": "shop", "question": "something else", "attempts": [["SELECT 1"]]}
    other.write_text(json.dumps({"runs": [{"items": [item]}]}))
    assert main(["--data", str(shop), "--replay", str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: cannot replay {other}: the report has no answer for") and "\n" not in err


def test_replay_serves_repeated_questions_in_order_and_empty_recordings() -> None:
    from evals.replay import Recording, ReplayClient
    from inference.protocol import DatabaseInfo

    client = ReplayClient(
        [Recording("db", "same?", [["SELECT 1"]]), Recording("db", "same?", [["SELECT 2"]]), Recording("db", "x", [])]
    )
    client.check_covers([("db", "same?"), ("db", " same? "), ("db", "x")])

    async def first(question: str) -> str:
        return (await client.generate(GenerateRequest(question=question, database=DatabaseInfo(name="db")))).sql

    assert asyncio.run(first("same?")) == "SELECT 1" and asyncio.run(first("same?  ")) == "SELECT 2"
    assert asyncio.run(first("x")) == "" and client.unrecorded == 1  # nothing recorded: an empty answer, counted


def test_replay_refuses_malformed_attempts(shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"runs": [{"items": [{"db_id": "shop", "question": "q", "attempts": ["SELECT 1"]}]}]}))
    assert main(["--data", str(shop), "--replay", str(bad)]) == 2
    assert "item 0's attempts are not lists of SQL texts" in capsys.readouterr().err
