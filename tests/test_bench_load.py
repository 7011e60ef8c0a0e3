"""The load test runs end to end on a small scale: the real server process, signed Slack
commands and Teams activities, every request answered."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_load_bench_answers_every_request() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.load", "--concurrency", "4", "--requests", "8", "--teams"],
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line.split(" | ") for line in done.stdout.splitlines() if line.startswith("instant | ")]
    platforms = {row[1]: row for row in rows}
    assert set(platforms) == {"slack", "teams", "all"}
    assert platforms["all"][8:10] == ["0", "0"]  # no errors, nothing lost
    assert 'chat2sql_bot_questions_total{outcome=\\"answer\\"} 10.0' in done.stdout  # 8 + 2 warm-up
