"""Fixture corpora for the guard: one statement per line, side by side with what to expect.

``reject_<dialect>.sql``: ``<expected rule><TAB><sql>`` per line.
``valid_<dialect>.sql``: one accepted analytical query per line.
Lines starting with ``#`` and blank lines are skipped.
"""

from __future__ import annotations

from pathlib import Path

GUARD_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "guard"
DIALECTS = ("sqlite", "postgres", "mysql")


def _lines(path: Path) -> list[str]:
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.strip() and not raw.startswith("#"):
            out.append(raw)
    return out


def reject_corpus(dialect: str) -> list[tuple[str, str]]:
    pairs = []
    for line in _lines(GUARD_FIXTURES / f"reject_{dialect}.sql"):
        rule, _, sql = line.partition("\t")
        pairs.append((rule.strip(), sql))
    return pairs


def valid_corpus(dialect: str) -> list[str]:
    return _lines(GUARD_FIXTURES / f"valid_{dialect}.sql")
