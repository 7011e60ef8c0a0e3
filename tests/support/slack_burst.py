"""A burst of signed ``/sql`` commands from a process of its own (so the client's work does
not share the server's event loop): ``python -m tests.support.slack_burst URL SECRET
RESPOND_BASE N`` prints one JSON line: the status of each response, ``[status, ...]``."""

from __future__ import annotations

import asyncio
import json
import sys
from urllib.parse import urlencode

import httpx

from tests.support.fake_slack import signed_headers


async def burst(url: str, secret: str, respond_base: str, n: int) -> list[int]:
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=n)) as http:

        async def one(i: int) -> int:
            body = urlencode({"command": "/sql", "text": f"question number {i}?", "team_id": "T1", "channel_id": "C1",
                              "user_id": "U-alice", "response_url": f"{respond_base}/q{i}", "trigger_id": "t",
                              "api_app_id": "A1"})  # fmt: skip
            headers = {"Content-Type": "application/x-www-form-urlencoded", **signed_headers(secret, body)}
            response = await http.post("/slack/events", content=body, headers=headers)
            return response.status_code

        return await asyncio.gather(*(one(i) for i in range(n)))


if __name__ == "__main__":
    url, secret, respond_base, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    print(json.dumps(asyncio.run(burst(url, secret, respond_base, n))))
