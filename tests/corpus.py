"""Moved to ``tests.support.corpus``; this path stays while bench/ imports it (then delete
this file)."""

from tests.support.corpus import DIALECTS, GUARD_FIXTURES, reject_corpus, valid_corpus

__all__ = ["DIALECTS", "GUARD_FIXTURES", "reject_corpus", "valid_corpus"]
