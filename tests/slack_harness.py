"""Moved to ``tests.support.slack``; this path stays while bench/slack_bench.py imports it
(then delete this file)."""

from tests.support.slack import SlackHarness, running_slack

__all__ = ["SlackHarness", "running_slack"]
