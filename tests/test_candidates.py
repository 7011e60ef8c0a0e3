"""Candidates checked by execution: several answers per question, the failing ones dropped,
the one most others agree with chosen; when all fail, a repair round shows the model its error."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from bot.core.assistant import Assistant
from bot.core.candidates import Candidate, choose, distinct, repair_error, result_key
from chat2sql.settings import Settings
from inference.protocol import GenerateRequest
from schemas.model import Column, DatabaseSchema, Table
from tests.support.assistant import ADMIN, registered_assistant
from tests.support.clients import SampledClient

WRONG = "SELECT name FROM employees WHERE id = 1"  # valid, runs, answers something else
FAILING = "SELECT nickname FROM employees"  # the guard rejects it: no such column
RIGHT = "SELECT name FROM employees WHERE salary > 100000 AND id > 1"
RIGHT_TOO = "SELECT e.name FROM employees AS e WHERE e.id = 2"  # other text, the same rows


@pytest_asyncio.fixture
async def make(settings: Settings, sqlite_url: str) -> AsyncIterator[Callable[..., object]]:
    made: list[Assistant] = []

    async def build(client: SampledClient, **config: object) -> Assistant:
        assistant = await registered_assistant(settings, sqlite_url, client, **config)
        made.append(assistant)
        return assistant

    yield build
    for assistant in made:
        await assistant.close()


@pytest.mark.asyncio
async def test_the_candidate_most_others_agree_with_wins(make: Callable[..., object]) -> None:
    client = SampledClient(lambda _: [WRONG, FAILING, RIGHT, RIGHT_TOO])
    assistant = await make(client, candidates=3)  # type: ignore[operator]
    reply = await assistant.ask("who earns over 100k besides Ada?", ADMIN)
    assert reply.kind == "answer" and reply.answer is not None
    assert reply.answer.sql.startswith(RIGHT)  # two candidates return Bo: they outvote the greedy one
    assert client.requests[0].samples == 3 and client.requests[0].temperature == 0.7
    assert len(client.requests) == 1  # something passed: no repair round
    audit = assistant.store.audit(limit=1)[0]
    assert audit.guard_verdict == "accepted" and audit.sql is not None and audit.sql.startswith(RIGHT)


@pytest.mark.asyncio
async def test_a_tie_goes_to_the_greedy_answer(make: Callable[..., object]) -> None:
    client = SampledClient(lambda _: [WRONG, RIGHT, FAILING])
    assistant = await make(client, candidates=2)  # type: ignore[operator]
    reply = await assistant.ask("who is employee one?", ADMIN)
    assert reply.answer is not None and reply.answer.sql.startswith(WRONG)


@pytest.mark.asyncio
async def test_all_failing_runs_a_repair_round_with_the_error(make: Callable[..., object]) -> None:
    def script(request: GenerateRequest) -> list[str]:
        if request.previous is None:
            return [FAILING, "SELECT nickname FROM departments", "SELECT * FROM staff"]
        return [RIGHT, RIGHT, FAILING]

    client = SampledClient(script)
    assistant = await make(client, candidates=2)  # type: ignore[operator]
    reply = await assistant.ask("nicknames of the well paid?", ADMIN)
    assert reply.kind == "answer" and reply.answer is not None and reply.answer.sql.startswith(RIGHT)
    repair = client.requests[1]
    assert repair.previous is not None and repair.previous.sql == FAILING  # the greedy answer and its error
    assert "nickname" in repair.previous.error and repair.samples == 2
    assert "employees has the columns id, name, email," in repair.previous.error  # the table it read


PINNED = "SELECT e.name, e.budget FROM employees AS e WHERE e.salary > 100000"  # budget is in departments


@pytest.mark.asyncio
async def test_all_failing_on_a_name_tries_the_schema_repairs_before_the_model(make: Callable[..., object]) -> None:
    client = SampledClient(lambda _: [PINNED, PINNED, FAILING])
    assistant = await make(client, candidates=2)  # type: ignore[operator]
    reply = await assistant.ask("names and department budgets of the well paid?", ADMIN)
    assert reply.kind == "answer" and reply.answer is not None
    assert "JOIN departments ON e.department_id = departments.id" in reply.answer.sql
    assert "e.budget read from departments, joined to e" in reply.answer.warnings  # said, not hidden
    assert len(client.requests) == 1  # mended without asking the model again
    audit = assistant.store.audit(limit=1)[0]
    assert audit.guard_verdict == "accepted" and audit.sql == reply.answer.sql
    assert assistant.metrics.schema_repairs.labels("answered")._value.get() == 1


@pytest.mark.asyncio
async def test_with_schema_repairs_off_the_model_repairs_alone(make: Callable[..., object]) -> None:
    client = SampledClient(lambda request: [PINNED] if request.previous is None else [RIGHT])
    assistant = await make(client, schema_repairs=False)  # type: ignore[operator]
    reply = await assistant.ask("names and department budgets of the well paid?", ADMIN)
    assert reply.answer is not None and reply.answer.sql.startswith(RIGHT)
    assert len(client.requests) == 2


@pytest.mark.asyncio
async def test_a_database_error_drops_a_candidate(make: Callable[..., object]) -> None:
    refused = "SELECT name FROM employees WHERE abs('x', 1) = 1"  # SQLite: wrong number of arguments
    client = SampledClient(lambda _: [refused, RIGHT])
    assistant = await make(client, candidates=1)  # type: ignore[operator]
    reply = await assistant.ask("who?", ADMIN)
    assert reply.answer is not None and reply.answer.sql.startswith(RIGHT)


@pytest.mark.asyncio
async def test_nothing_passing_twice_is_a_plain_no_answer(make: Callable[..., object]) -> None:
    client = SampledClient(lambda _: [FAILING, FAILING])
    assistant = await make(client, candidates=1)  # type: ignore[operator]
    reply = await assistant.ask("nicknames?", ADMIN)
    assert reply.kind == "error" and reply.error_kind == "GuardRejected"
    assert "nickname" in reply.text and reply.options  # what failed, and tables to pick
    assert len(client.requests) == 2


@pytest.mark.asyncio
async def test_greedy_only_asks_for_no_samples(make: Callable[..., object]) -> None:
    client = SampledClient(lambda _: [RIGHT])
    assistant = await make(client)  # type: ignore[operator]
    reply = await assistant.ask("who?", ADMIN)
    assert reply.answer is not None and client.requests[0].samples == 0


def test_choose_rules() -> None:
    def c(index: int, rows: tuple[str, ...] | None, *, ok: bool = True) -> Candidate:
        return Candidate(
            sql=f"q{index}",
            index=index,
            normalized=f"Q{index}" if ok else None,
            problem=None if ok else "refused",
            result=None if rows is None else (1, rows),
            rows=len(rows or ()),
        )

    assert choose([c(0, None, ok=False), c(1, None, ok=False)]) is None
    assert choose([c(0, ("a",)), c(1, ("b",)), c(2, ("b",))]).index == 1  # type: ignore[union-attr]
    assert choose([c(0, ()), c(1, ("b",))]).index == 1  # type: ignore[union-attr]  # a tie: rows beat none
    # one that did not finish in time is a group of its own, without rows: a finished one beats it
    assert choose([c(0, None), c(1, ("b",))]).index == 1  # type: ignore[union-attr]
    assert choose([c(0, None), c(1, None)]).index == 0  # type: ignore[union-attr]
    assert choose([c(0, ("a",), ok=False), c(1, ("b",)), c(2, ("c",))]).index == 1  # type: ignore[union-attr]


def test_results_agree_whatever_their_order_and_float_noise() -> None:
    assert result_key(("a",), [(1, 0.1 + 0.2), (2, 0.5)]) == result_key(("b",), [(2, 0.5), (1, 0.3)])
    assert result_key(("a",), [(1,)]) != result_key(("a", "b"), [(1, None)])


def test_distinct_counts_each_text_once() -> None:
    assert distinct(["SELECT 1", "select 2", "SELECT  1;", "SELECT 1"]) == {"SELECT 1": [0, 2, 3], "select 2": [1]}


def test_a_repair_error_names_the_columns_of_the_tables_it_concerns() -> None:
    def table(name: str, *columns: str) -> Table:
        return Table(name=name, columns=tuple(Column(name=c, type="TEXT") for c in columns))

    schema = DatabaseSchema(
        dialect="sqlite",
        tables=(table("Student", "StuID", "Fname"), table("Pets", "PetID", "PetType"), table("Has_Pet", "StuID")),
    )
    problem = "unknown column 'T1.fname': fname is a column of Student, not of Pets"
    text = repair_error(problem, "SELECT T1.fname FROM Pets AS T1", schema, limit=500)
    assert text == (
        f"{problem}. Pets has the columns PetID, PetType. Student has the columns StuID, Fname."
    )  # the table it read first, then the others the error names; never Has_Pet
    assert repair_error(problem, "not sql (", schema, limit=80) == f"{problem}."  # what fits


def test_votes_are_weighed_rows_first_then_doubts() -> None:
    def c(index: int, rows: tuple[str, ...], doubts: int = 0) -> Candidate:
        return Candidate(
            sql=f"q{index}", index=index, normalized=f"Q{index}", result=(1, rows), rows=len(rows), doubts=doubts
        )

    # two agreeing empty results lose to one with rows: an empty answer rarely answers
    assert choose([c(0, ()), c(1, ()), c(2, ("a",))]).index == 2  # type: ignore[union-attr]
    # the greedy vote (1.5) beats one sample, not two agreeing ones
    assert choose([c(0, ("a",)), c(1, ("b",))]).index == 0  # type: ignore[union-attr]
    assert choose([c(0, ("a",)), c(1, ("b",)), c(2, ("b",))]).index == 1  # type: ignore[union-attr]
    # each doubt halves a vote: two doubtful samples (0.5 + 0.5) lose to the greedy answer
    assert choose([c(0, ("a",)), c(1, ("b",), 1), c(2, ("b",), 1)]).index == 0  # type: ignore[union-attr]


UNGROUPED = "SELECT department_id, COUNT(*) FROM employees WHERE department_id IS NOT NULL"


@pytest.mark.asyncio
async def test_an_ungrouped_count_is_also_tried_grouped(make: Callable[..., object]) -> None:
    client = SampledClient(lambda _: [UNGROUPED, UNGROUPED.replace("COUNT(*)", "COUNT(id)")])
    assistant = await make(client, candidates=1)  # type: ignore[operator]
    reply = await assistant.ask("how many employees in each department?", ADMIN)
    assert reply.kind == "answer" and reply.answer is not None
    assert "GROUP BY department_id" in reply.answer.sql
    assert "grouped by department_id: the aggregate ran over all rows" in reply.answer.warnings
    assert len(client.requests) == 1
    audit = assistant.store.audit(limit=1)[0]
    assert audit.guard_verdict == "accepted" and audit.sql == reply.answer.sql


@pytest.mark.asyncio
async def test_with_grouping_repairs_off_the_ungrouped_answer_stands(make: Callable[..., object]) -> None:
    client = SampledClient(lambda _: [UNGROUPED])
    assistant = await make(client, grouping_repairs=False)  # type: ignore[operator]
    reply = await assistant.ask("how many employees in each department?", ADMIN)
    assert reply.answer is not None and "GROUP BY" not in reply.answer.sql


@pytest.mark.asyncio
async def test_a_grouped_version_that_a_sample_wrote_gathers_the_ungrouped_votes(make: Callable[..., object]) -> None:
    extreme = "SELECT department_id, MAX(salary) FROM employees WHERE department_id IS NOT NULL"
    grouped = f"{extreme} GROUP BY department_id"
    wrong = "SELECT department_id, salary FROM employees WHERE id = 1"
    client = SampledClient(lambda _: [extreme, extreme, grouped, wrong])
    assistant = await make(client, candidates=3)  # type: ignore[operator]
    reply = await assistant.ask("what is the top salary in each department?", ADMIN)
    assert reply.answer is not None and "GROUP BY department_id" in reply.answer.sql
    # Without "each" the ungrouped extreme is SQLite's row of the maximum: left as it is.
    client.script = lambda _: [extreme, extreme, wrong]
    reply = await assistant.ask("which department has the top salary?", ADMIN)
    assert reply.answer is not None and "GROUP BY" not in reply.answer.sql
