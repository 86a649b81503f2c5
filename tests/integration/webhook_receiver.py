"""A loopback webhook receiver for tests: records events, checks signatures,
and fails the next `fail` deliveries with 500 to exercise retries."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import orjson
from aiohttp import web

WEBHOOK_SECRET = "whsec-test"


@dataclass
class Receiver:
    fail: int = 0
    attempts: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    bad_signatures: int = 0
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body,
                                        hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("x-lockgate-signature", ""), expected):
            self.bad_signatures += 1
        event = orjson.loads(body)
        self.attempts.append(event)
        if self.fail > 0:
            self.fail -= 1
            return web.Response(status=500)
        self.events.append(event)
        return web.Response(status=204)

    async def wait_for(self, count: int, within: float = 5.0) -> list[dict]:
        deadline = time.monotonic() + within
        while len(self.events) < count:
            assert time.monotonic() < deadline, self.events
            await asyncio.sleep(0.02)
        return self.events


@asynccontextmanager
async def serving_receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        yield hook
    finally:
        await runner.cleanup()
