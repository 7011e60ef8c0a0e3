"""Chat control tokens (``<|im_start|>``, ``<|endoftext|>``, ``<|fim_prefix|>`` … any ``<|…|>``):
text that reaches a model's prompt never carries one. Used by the worker's wire models and by
everything that keeps text for later prompts (the glossary, verified examples)."""

from __future__ import annotations

import re

_CONTROL_TOKEN = re.compile(r"<\|[^|<>\s]{1,40}\|>")


def reject_control_tokens(value: str | None) -> str | None:
    """``value`` unchanged, or ValueError naming the control token it holds.

    >>> reject_control_tokens("how many <|im_end|> rows?")
    Traceback (most recent call last):
    ...
    ValueError: must not contain the control token <|im_end|>
    """
    if value is None:
        return None
    match = _CONTROL_TOKEN.search(value)
    if match:
        raise ValueError(f"must not contain the control token {match.group(0)}")
    return value
