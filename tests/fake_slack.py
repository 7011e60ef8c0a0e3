"""Moved to ``tests.support.fake_slack``; this path stays while bench/load.py imports it (then
delete this file)."""

from tests.support.fake_slack import Call, FakeSlack, signed_headers

__all__ = ["Call", "FakeSlack", "signed_headers"]
