"""Checking the model's candidates: each through the guard, each accepted one for a short
read-only run (the database's own errors drop it, its rows are its vote), the aggregating
ones without GROUP BY also tried grouped, and, when all failed, the mends of those that
named an unknown table or column (``schemas.repair``) or that the database refused
ungrouped (``schemas.grouping``). Blocking work (sqlglot, the database): callers run these
in a worker thread. Each returns what it found; the caller counts and records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from bot.core.candidates import Candidate, choose, doubts, result_key
from chat2sql import errors, messages
from schemas import guard
from schemas.grouping import asks_per_group, regrouped
from schemas.preview import ReadOnlyRunner
from schemas.registry import RegisteredDatabase
from schemas.repair import Repair, repairs

VALIDATION_ROWS = 1  # a lone answer is run for one row: the database's errors feed the retry
CANDIDATE_ROWS = 20  # several are run for this many: their rows are their votes
REPAIRABLE_RULES = frozenset({"known_tables", "known_columns"})  # what schemas.repair mends
VALIDATION_TIMEOUT_S = 3.0


@dataclass(frozen=True, kw_only=True)
class Database:
    """A database to check against: its entry as the model sees it and where to run."""

    entry: RegisteredDatabase
    url: str
    max_rows: int  # the guard's row limit (the preview's)


@dataclass(frozen=True, kw_only=True)
class Found:
    """What a check found: the candidates (or the chosen one) and how many SQL texts it tried."""

    candidates: tuple[Candidate, ...]
    tried: int


def guard_all(db: Database, sqls: Sequence[str]) -> list[guard.GuardResult]:
    entry = db.entry
    return [
        guard.check(sql, entry.schema, max_rows=db.max_rows, allowed_functions=entry.allowed_functions) for sql in sqls
    ]


def run_all(db: Database, verdicts: Sequence[guard.GuardResult], rows: int) -> list[Candidate]:
    """Each guard-accepted candidate run for ``rows`` rows on one read-only connection."""
    out = []
    runner: ReadOnlyRunner | None = None
    try:
        for verdict in verdicts:
            if not verdict.ok or verdict.normalized is None:
                out.append(Candidate(sql=verdict.sql, index=0, rule=verdict.rule, problem=f"{verdict.reason}"))
                continue
            accepted = Candidate(
                sql=verdict.sql,
                index=0,
                normalized=verdict.normalized,
                warnings=verdict.warnings,
                doubts=doubts(verdict.normalized, verdict.warnings, db.entry.schema.dialect),
            )
            if runner is None:
                runner = ReadOnlyRunner(url=db.url, allowed_functions=db.entry.allowed_functions)
            try:
                result = runner.run(verdict.normalized, max_rows=rows, timeout_s=VALIDATION_TIMEOUT_S)
            except errors.PreviewTimeout:
                out.append(accepted)  # slow is not wrong: the preview has its own, longer limit
            except errors.PreviewFailed as err:
                out.append(replace(accepted, rule="database_error", problem=messages.user_message(err)))
            else:
                out.append(replace(accepted, result=result_key(result.columns, result.rows), rows=len(result.rows)))
    finally:
        if runner is not None:
            runner.close()
    return out


def checked(db: Database, sqls: Sequence[str], rows: int) -> tuple[list[guard.GuardResult], list[Candidate]]:
    """The guard's verdicts on ``sqls`` and the candidates they make once run."""
    verdicts = guard_all(db, sqls)
    return verdicts, run_all(db, verdicts, rows)


def regroup(db: Database, candidates: Sequence[Candidate], question: str) -> Found:
    """``candidates`` with each accepted one that aggregates without GROUP BY read as its
    grouped version (``schemas.grouping``), when that passes the guard and the same short run.
    The grouped one keeps the original's index, warnings and doubts (the ungrouped one stands
    for the grouping guess), so it weighs what the original did: two other candidates that
    agree outvote it. The grouping's note comes first among its warnings."""
    sources: dict[str, Repair] = {}
    per_group = asks_per_group(question)
    for candidate in candidates:
        # Only an ungrouped SELECT can be regrouped, and ``doubts`` counted it: no re-parse of the rest.
        if candidate.ok and candidate.doubts:
            grouped = regrouped(candidate.normalized or candidate.sql, db.entry.schema.dialect, per_group=per_group)
            if grouped is not None:
                sources[candidate.sql] = grouped
    if not sources:
        return Found(candidates=tuple(candidates), tried=0)
    proposals = list(dict.fromkeys(r.sql for r in sources.values()))
    variants = dict(zip(proposals, checked(db, proposals, CANDIDATE_ROWS)[1], strict=True))
    out = []
    for candidate in candidates:
        repair = sources.get(candidate.sql)
        variant = variants[repair.sql] if repair is not None else None
        if repair is None or variant is None or not variant.ok:
            out.append(candidate)
            continue
        warnings = (*repair.notes, *dict.fromkeys((*candidate.warnings, *variant.warnings)))
        doubt = max(candidate.doubts, variant.doubts + 1)  # the original's (the guard's moves too)
        out.append(replace(variant, index=candidate.index, doubts=doubt, warnings=warnings))
    return Found(candidates=tuple(out), tried=len(proposals))


def mend(
    db: Database, failed: Sequence[Candidate], question: str, *, schema_repairs: bool, grouping_repairs: bool
) -> Found:
    """When every candidate failed: the schema repairs of those that named a table or column
    the schema lacks, and the grouped versions of those the database refused (``ORDER BY
    COUNT(*)`` without GROUP BY), through the guard and the same short run. A grouping is a
    guess the schema does not back: one doubt. The notes become the answer's warnings.
    ``candidates`` holds the chosen mend alone (or nothing); ``tried`` 0: none proposed."""
    proposals: dict[str, tuple[tuple[str, ...], int]] = {}
    tried = {c.sql for c in failed}
    per_group = asks_per_group(question)
    for candidate in failed:
        mends: list[tuple[Repair, int]] = []
        if candidate.rule in REPAIRABLE_RULES and schema_repairs:
            mends = [(mended, 0) for mended in repairs(candidate.sql, db.entry.schema)]
        elif candidate.rule == "database_error" and grouping_repairs:
            grouped = regrouped(candidate.normalized or candidate.sql, db.entry.schema.dialect, per_group=per_group)
            if grouped is not None:  # the guard's notes on the original still hold, and its doubts
                notes = (*grouped.notes, *candidate.warnings)
                mends = [(replace(grouped, notes=notes), max(1, candidate.doubts))]
        for mended, doubt in mends:
            if mended.sql not in tried:
                proposals.setdefault(mended.sql, (mended.notes, doubt))
    if not proposals:
        return Found(candidates=(), tried=0)
    start = len(failed)
    mended_candidates = [
        replace(c, index=start + i, warnings=(*notes, *c.warnings), doubts=c.doubts + doubt)
        for i, (c, (notes, doubt)) in enumerate(
            zip(checked(db, list(proposals), CANDIDATE_ROWS)[1], proposals.values(), strict=True)
        )
    ]
    chosen = choose(mended_candidates)
    return Found(candidates=() if chosen is None else (chosen,), tried=len(proposals))
