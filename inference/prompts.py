"""Named, versioned prompt formats.

``seed`` is the seed adapter's training prompt byte for byte (hand-written ChatML, no
``apply_chat_template``; it ends right after ``assistant\\n``). ``schema`` adds the
database's schema and SQL dialect, the default for registered business databases.

>>> print(build_prompt("seed", question="How many singers?", database_name="concert_singer"), end="")
... # doctest: +NORMALIZE_WHITESPACE
<|im_start|>system
You are an expert SQL assistant that converts natural language questions into accurate SQL queries.<|im_end|>
<|im_start|>user
You are an expert SQL assistant. Given a natural language question and a database name, write the correct SQL query.
<BLANKLINE>
Database: concert_singer
Question: How many singers?
<BLANKLINE>
Write only the SQL query, nothing else.<|im_end|>
<|im_start|>assistant
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chat2sql import messages
from chat2sql.errors import UserFacingError
from inference.protocol import GenerateRequest

TokenCounter = Callable[[str], int]

SYSTEM = "You are an expert SQL assistant that converts natural language questions into accurate SQL queries."

_SEED_V1 = (
    "<|im_start|>system\n"
    f"{SYSTEM}<|im_end|>\n"
    "<|im_start|>user\n"
    "You are an expert SQL assistant. Given a natural language question and a database name, "
    "write the correct SQL query.\n"
    "\n"
    "Database: {db_id}\n"
    "Question: {question}\n"
    "\n"
    "Write only the SQL query, nothing else.<|im_end|>\n"
    "<|im_start|>assistant\n"
)

_SCHEMA_V1_HEAD = (
    "<|im_start|>system\n"
    f"{SYSTEM}<|im_end|>\n"
    "<|im_start|>user\n"
    "Write one {dialect} SQL query that answers the question. "
    "Use only the tables and columns in the schema below.\n"
    "\n"
    "Database: {db_id}\n"
    "Schema:\n"
)
# A retry continues the conversation: the refused answer as the assistant's turn, then the
# error as the user's reply. Small models correct themselves far more often this way than
# when the error is folded into the first message.
_SCHEMA_V1_RETRY = (
    "{sql}<|im_end|>\n"
    "<|im_start|>user\n"
    "That query is wrong: {error}. Use only the tables and columns in the schema. "
    "Write only the corrected SQL query.<|im_end|>\n"
    "<|im_start|>assistant\n"
)
_SCHEMA_V1_TAIL = (
    "\n\nQuestion: {question}\n\nWrite only the SQL query, nothing else.<|im_end|>\n<|im_start|>assistant\n"
)
# A follow-up in a thread continues the conversation the same way: the earlier question
# (in the format's own first message), its SQL as the assistant's turn, then the follow-up.
_FOLLOW_UP = (
    "{sql}<|im_end|>\n"
    "<|im_start|>user\n"
    "Follow-up question: {question}\n"
    "\n"
    "Write one complete SQL query that answers the follow-up, nothing else.<|im_end|>\n"
    "<|im_start|>assistant\n"
)

_EXAMPLES_HEAD = "\n\nVerified examples for this database:"
_HINTS_HEAD = "\n\nNotes:"
_HINT = "\n- {hint}"
_EXAMPLE = "\nQuestion: {question}\nSQL: {sql}"

_BLOCK_SEPARATOR = "\n\n"  # between tables in schema_text, and in the prompt

_DIALECT_NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL", "mysql": "MySQL"}


class UnknownPromptFormat(UserFacingError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    @property
    def message(self) -> str:
        return messages.unknown_prompt_format(self.name, sorted(FORMATS))


class PromptTooLong(UserFacingError):
    @property
    def message(self) -> str:
        return messages.PROMPT_TOO_LONG


@dataclass(frozen=True, kw_only=True)
class PromptFormat:
    name: str
    version: int
    uses_schema: bool

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"


SEED = PromptFormat(name="seed", version=1, uses_schema=False)
SCHEMA = PromptFormat(name="schema", version=1, uses_schema=True)
FORMATS: dict[str, PromptFormat] = {f: fmt for fmt in (SEED, SCHEMA) for f in (fmt.name, fmt.id)}
DEFAULT_FORMAT = "schema"


def get_format(name: str) -> PromptFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise UnknownPromptFormat(name) from None


def build_prompt(
    format_name: str,
    *,
    question: str,
    database_name: str,
    dialect: str = "sqlite",
    schema_text: str = "",
    max_tokens: int | None = None,
    count_tokens: TokenCounter | None = None,
    previous_sql: str | None = None,
    previous_error: str | None = None,
    prior_question: str | None = None,
    prior_sql: str | None = None,
    examples: Sequence[tuple[str, str]] = (),
    hints: Sequence[str] = (),
) -> str:
    """The exact model input. When ``max_tokens`` is set, whole tables are dropped from the
    end of the schema until the prompt fits: the question is never cut. The cut is found once,
    in time linear in the schema (see ``blocks_that_fit``).

    ``prior_question``/``prior_sql`` make it a follow-up; ``previous_sql``/``previous_error``
    a retry of the answer that failed. ``examples`` (verified question/SQL pairs) go after the
    schema in the ``schema`` format; the ``seed`` format is the adapter's training prompt and
    stays byte for byte, so it takes none. ``hints`` (glossary entries, value links) follow
    the examples as notes. Without examples or hints the prompt is unchanged."""
    fmt = get_format(format_name)
    follow_up = ""
    if prior_question and prior_sql:
        follow_up = _FOLLOW_UP.format(sql=prior_sql, question=question)
        question = prior_question
    retry = _SCHEMA_V1_RETRY.format(sql=previous_sql, error=previous_error) if previous_sql and previous_error else ""
    if not fmt.uses_schema:
        prompt = _SEED_V1.format(db_id=database_name, question=question) + follow_up + retry
        return _check_fits(prompt, max_tokens, count_tokens)
    head = _SCHEMA_V1_HEAD.format(dialect=_DIALECT_NAMES.get(dialect, dialect), db_id=database_name)
    shown = "".join(_EXAMPLE.format(question=q, sql=sql) for q, sql in examples)
    notes = "".join(_HINT.format(hint=" ".join(h.split())) for h in hints)
    tail = (
        (_EXAMPLES_HEAD + shown if shown else "")
        + (_HINTS_HEAD + notes if notes else "")
        + _SCHEMA_V1_TAIL.format(question=question)
        + follow_up
        + retry
    )
    blocks = schema_blocks(schema_text)
    if max_tokens is None or count_tokens is None:
        return head + _BLOCK_SEPARATOR.join(blocks) + tail
    fits = _Fits(head, blocks, tail, max_tokens=max_tokens, count_tokens=count_tokens)
    kept = blocks_that_fit(fits, len(blocks), start=fits.estimate())
    if not fits(kept):  # only when even no schema at all is too long
        raise PromptTooLong()
    return fits.prompt(kept)


def prompt_for(
    request: GenerateRequest,
    format_name: str,
    *,
    max_tokens: int | None = None,
    count_tokens: TokenCounter | None = None,
) -> str:
    """``build_prompt`` for a wire request: its question, database, follow-up context and retry."""
    return build_prompt(
        format_name,
        question=request.question,
        database_name=request.database.name,
        dialect=request.database.dialect,
        schema_text=request.database.schema_text,
        max_tokens=max_tokens,
        count_tokens=count_tokens,
        previous_sql=request.previous.sql if request.previous else None,
        previous_error=request.previous.error if request.previous else None,
        prior_question=request.context.question if request.context else None,
        prior_sql=request.context.sql if request.context else None,
        examples=[(e.question, e.sql) for e in request.examples],
        hints=request.hints,
    )


def schema_blocks(schema_text: str) -> list[str]:
    """The schema's blocks (one table each), in order: what a budget keeps or drops whole."""
    return [b for b in schema_text.strip().split(_BLOCK_SEPARATOR) if b.strip()]


def blocks_that_fit(fits: Callable[[int], bool], total: int, *, start: int = 0) -> int:
    """The largest ``k`` in ``0..total`` with ``fits(k)`` (0 when none does), where ``fits(k)``
    says whether the prompt with the first ``k`` blocks is within budget.

    ``fits`` is assumed monotone (more schema, never fewer tokens), as the old
    drop-the-last-block-and-recount loop assumed, so the answer is that loop's; but it is
    found from an estimate ``start`` with a handful of ``fits`` calls, galloping out from
    ``start`` and bisecting, all of them on prompts near the budget when ``start`` is close.
    The loop recounted the whole prompt once per dropped block: quadratic in the schema,
    64,000 tokenizer calls on 198,000 characters.

    >>> blocks_that_fit(lambda k: k * 3 <= 10, 100, start=90)
    3
    >>> blocks_that_fit(lambda k: False, 5)
    0
    """
    start = min(max(start, 0), total)
    if fits(start):  # gallop up: start + 1, + 2, + 4, … until one does not fit
        lo, hi, step = start, total + 1, 1
        while lo < total:
            probe = min(start + step, total)
            if not fits(probe):
                hi = probe
                break
            lo, step = probe, step * 2
    else:  # gallop down until one fits
        lo, hi, step = -1, start, 1
        while hi > 0:
            probe = max(start - step, 0)
            if fits(probe):
                lo = probe
                break
            hi, step = probe, step * 2
    while hi - lo > 1:  # fits(lo) (or lo == -1) and not fits(hi) (or hi == total + 1)
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return max(lo, 0)


class _Fits:
    """Whether the prompt with the first ``k`` schema blocks is within ``max_tokens``, each
    answer counted once."""

    def __init__(
        self, head: str, blocks: Sequence[str], tail: str, *, max_tokens: int, count_tokens: TokenCounter
    ) -> None:
        self._head, self._blocks, self._tail = head, blocks, tail
        self._max_tokens, self._count = max_tokens, count_tokens
        self._known: dict[int, bool] = {}

    def prompt(self, k: int) -> str:
        return self._head + _BLOCK_SEPARATOR.join(self._blocks[:k]) + self._tail

    def __call__(self, k: int) -> bool:
        if k not in self._known:
            self._known[k] = self._count(self.prompt(k)) <= self._max_tokens
        return self._known[k]

    def estimate(self) -> int:
        """How many blocks fit by the sum of their own token counts (with separator), each
        block tokenized once and only until the budget is spent: linear in what is kept, not in
        the schema. Off by a token or so per block boundary, which the exact checks correct."""
        used = self._count(self._head + self._tail)
        for k, block in enumerate(self._blocks):
            used += self._count(block + _BLOCK_SEPARATOR)
            if used > self._max_tokens:
                return k
        return len(self._blocks)


def _check_fits(prompt: str, max_tokens: int | None, count_tokens: TokenCounter | None) -> str:
    if max_tokens is not None and count_tokens is not None and count_tokens(prompt) > max_tokens:
        raise PromptTooLong()
    return prompt
