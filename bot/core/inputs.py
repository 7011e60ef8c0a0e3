"""What the model is shown for one question, built from values: the database as the model
sees it (the glossary applied, hidden columns gone), the notes beside the schema (glossary
terms, the columns holding the question's values), the schema text the prompt has room for,
and the buttons that ask again naming a table. Pure functions: the callers fetch the
entries, glossaries and value indexes (``bot.core.ports.Catalog``) and run these off the loop."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from bot.core.types import Option
from inference.prompts import DEFAULT_FORMAT, UnknownPromptFormat, get_format, prompt_for
from inference.protocol import MAX_HINTS, GenerateRequest
from schemas import glossary as terms
from schemas.glossary import GlossaryEntry
from schemas.model import DatabaseSchema
from schemas.registry import RegisteredDatabase
from schemas.render import approx_tokens, rank_tables, render_schema, table_scores
from schemas.values import ValueIndex, links

GLOSSARY_BUDGET_TOKENS = 300  # of the prompt, for the glossary entries a question concerns
MAX_VALUE_HINTS = 5


@dataclass(frozen=True, kw_only=True)
class Notes:
    """The schema as the model sees it and the notes that go with one question."""

    schema: DatabaseSchema
    hints: tuple[str, ...] = ()
    linked: tuple[str, ...] = ()  # tables holding values the question names: kept first in a budget


def model_view(entry: RegisteredDatabase, glossary: tuple[GlossaryEntry, ...]) -> RegisteredDatabase:
    """The database as the model sees it: hidden columns gone (from the prompt, and so for the
    guard too: the model's SQL may not name them), column descriptions as comments."""
    return replace(entry, schema=terms.apply(entry.schema, glossary)) if glossary else entry


def notes_for(
    entry: RegisteredDatabase, glossary: Sequence[GlossaryEntry], question: str, index: ValueIndex | None
) -> Notes:
    """What the model is told for this question beyond the schema: the glossary's terms and
    metrics that the question concerns and the columns holding the values it names (never a
    hidden column's; ``index`` None: no value links)."""
    hints, linked = [], []
    if glossary:
        chosen = terms.relevant(glossary, question, budget_tokens=GLOSSARY_BUDGET_TOKENS)
        hints += [e.hint for e in chosen if e.kind in ("term", "metric")]  # descriptions: in the schema
    if index is not None:
        found = links(index, question, hidden=terms.hidden_columns(glossary))[:MAX_VALUE_HINTS]
        hints += [link.hint for link in found]
        linked += [link.table for link in found]
    return Notes(schema=entry.schema, hints=tuple(hints[:MAX_HINTS]), linked=tuple(dict.fromkeys(linked)))


def with_schema(
    notes: Notes, request: GenerateRequest, *, budget_tokens: int, max_input_tokens: int | None
) -> GenerateRequest:
    """``request`` with the schema text its prompt has room for.

    The text lists tables in the schema's order whatever the question, so that the engine's
    prefix cache serves every question on the database; the question only picks which tables
    are kept when they do not all fit. That pick has to happen here: the worker cuts whole
    tables from the end of the text to fit ``max_input_tokens``, which means by position,
    not by relevance. So the budget is the smaller of the schema budget and what the rest of
    the prompt (examples, a follow-up, a retry) leaves. A text that still fits is kept as it
    is, so that a retry's prompt extends the first one."""
    budget = budget_tokens
    if max_input_tokens is not None:
        try:
            fmt = get_format(request.prompt_format or DEFAULT_FORMAT)
        except UnknownPromptFormat:  # the worker's answer to it is the one the user sees
            fmt = None
        if fmt is not None and fmt.uses_schema:
            rest = approx_tokens(prompt_for(schema_text(request, ""), fmt.name))
            budget = max(0, min(budget, max_input_tokens - rest))
    text = request.database.schema_text
    if text and approx_tokens(text) <= budget:
        return request
    rendered = render_schema(notes.schema, question=request.question, max_tokens=budget, linked=notes.linked)
    return schema_text(request, rendered)


def schema_text(request: GenerateRequest, text: str) -> GenerateRequest:
    return request.model_copy(update={"database": request.database.model_copy(update={"schema_text": text})})


def matches(schema: DatabaseSchema, question: str) -> bool:
    """Whether the question names anything in the schema (a table, a column, a word of one)."""
    return any(score > 0 for score in table_scores(schema, question).values())


def table_options(entry: RegisteredDatabase, question: str, limit: int = 4) -> tuple[Option, ...]:
    """Buttons that ask again naming one table: the most relevant first, else the best connected."""
    ranked = rank_tables(entry.schema, question)
    if not matches(entry.schema, question):
        counts = {t.qualified_name: len(t.foreign_keys) for t in entry.schema.tables}
        for t in entry.schema.tables:
            for fk in t.foreign_keys:
                counts[fk.ref_table] = counts.get(fk.ref_table, 0) + 1
        ranked = sorted(counts, key=lambda n: (-counts[n], n))
    return tuple(Option(label=t, text=f"[db:{entry.name}] {question} (use table {t})") for t in ranked[:limit])
