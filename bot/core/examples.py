"""Verified examples: (question, SQL) pairs that admins keep per database (their 👍 on an answer,
their corrections, their commands), and the few most like a new question that go into its prompt.
Anyone else's 👍 is feedback only: an example reaches every user's prompts.

Similarity is lexical (Jaccard over the same stemmed words the schema ranking uses): no
embedding model, nothing to download, and it is exactly as good as the words people reuse
for the same business questions. An example is re-checked by the guard whenever its
database's schema changed since it was last checked; one that no longer passes is set
aside (with the reason) and not used until a later schema accepts it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bot.core.ports import BotState
from bot.core.types import VerifiedExample
from schemas import guard
from schemas.registry import RegisteredDatabase
from schemas.render import approx_tokens, stems


def similarity(a: str, b: str) -> float:
    """
    >>> similarity("How many employees per department?", "employees in each department")
    1.0
    >>> similarity("total sales by region", "sales by country")
    0.25
    """
    left, right = stems(a) - _STOP, stems(b) - _STOP
    if not left or not right:
        return 0.0
    return len(left & right) / len(left | right)


_STOP = frozenset({"the", "a", "an", "of", "in", "on", "for", "to", "by", "and", "or", "what", "which", "who",
                   "how", "many", "much", "is", "are", "do", "doe", "we", "our", "me", "show", "list", "each", "per",
                   "with", "from", "all", "there", "have", "ha"})  # fmt: skip


async def current(state: BotState, entry: RegisteredDatabase) -> list[VerifiedExample]:
    """The database's active examples, re-checking any checked against an older schema."""
    active: list[VerifiedExample] = []
    for example in await state.examples(entry.name):
        if example.schema_hash != entry.schema_hash:
            verdict = await asyncio.to_thread(
                guard.check, example.sql, entry.schema, allowed_functions=entry.allowed_functions
            )
            reason = None if verdict.ok else f"{verdict.rule}: {verdict.reason}"
            await state.set_example_status(
                example.id, status="active" if verdict.ok else "set_aside", reason=reason, schema_hash=entry.schema_hash
            )
            if verdict.ok:
                active.append(example)
        elif example.status == "active":
            active.append(example)
    return active


# Measured on the shipped evaluation set (README, "Evaluation"): with any word in common, the
# offline model copied the shape of near-but-different examples ("for each segment" into "in
# the Enterprise segment") and lost 15 points of execution accuracy. So by default examples
# are shown only when they are close paraphrases of the question.
MIN_SIMILARITY = 0.75


def select(
    examples: Sequence[VerifiedExample],
    question: str,
    *,
    k: int,
    budget_tokens: int,
    min_similarity: float = MIN_SIMILARITY,
) -> list[VerifiedExample]:
    """Up to ``k`` examples most like ``question`` (at least ``min_similarity``), within the budget."""
    scored = sorted(((similarity(question, e.question), e) for e in examples), key=lambda pair: (-pair[0], pair[1].id))
    chosen: list[VerifiedExample] = []
    used = 0
    for score, example in scored:
        if score <= 0 or score < min_similarity or len(chosen) >= k:
            break
        cost = approx_tokens(example.question) + approx_tokens(example.sql) + 4
        if used + cost > budget_tokens:
            continue
        chosen.append(example)
        used += cost
    return chosen
