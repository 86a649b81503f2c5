"""Outgoing webhooks: events POSTed as JSON to an admin-configured URL, with
retries, off the request path.

`send` only queues (bounded: when full, the event is dropped and counted,
never blocking a call); a background task delivers in order, retrying
connection errors, timeouts, 429 and 5xx with exponential backoff. With a
secret, each body is signed: `x-lockgate-signature: sha256=<hex HMAC of the
body>`, so receivers can check it came from the gateway.

    {"id": "evt_…", "type": "subscription.requested", "time": "…Z", "data": {…}}
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from lockgate.ids import new_id
from lockgate.metrics import Counter

log = logging.getLogger("lockgate.webhook")

DELIVERED = Counter("lockgate_webhook_delivered_total", "Webhook events delivered", ["source"])
FAILED = Counter("lockgate_webhook_failed_total",
                 "Webhook events given up after every retry, or dropped (queue full)", ["source"])


class Webhook:
    def __init__(self, url: str, *, source: str, secret: str = "", max_queue: int = 1000,
                 attempts: int = 6, timeout: float = 5.0, backoff: float = 0.5,
                 transport: httpx.AsyncBaseTransport | None = None):
        if not url.startswith(("http://", "https://")):
            raise ValueError("webhook URL must be http(s)://")
        self.url = url
        self.source = source
        self._secret = secret.encode()
        self.attempts = attempts
        self.backoff = backoff
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=max_queue)
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport,
                                         follow_redirects=False)
        self._task: asyncio.Task | None = None

    def send(self, event_type: str, data: dict[str, Any]) -> None:
        body = orjson.dumps({
            "id": new_id("evt"), "type": event_type,
            "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"), "data": data,
        })
        try:
            self._queue.put_nowait(body)
        except asyncio.QueueFull:
            FAILED.labels(self.source).inc()
            log.warning("webhook queue full; event dropped", extra={"type": event_type})

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._deliver_forever())

    async def close(self, drain_seconds: float = 2.0) -> None:
        """Try to deliver what is queued for a moment, then stop."""
        if self._task is not None:
            try:
                await asyncio.wait_for(self._queue.join(), drain_seconds)
            except TimeoutError:
                pass
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self._client.aclose()

    async def _deliver_forever(self) -> None:
        while True:
            body = await self._queue.get()
            try:
                await self._deliver(body)
            finally:
                self._queue.task_done()

    async def _deliver(self, body: bytes) -> None:
        headers = {"content-type": "application/json"}
        if self._secret:
            signature = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
            headers["x-lockgate-signature"] = f"sha256={signature}"
        for attempt in range(self.attempts):
            try:
                reply = await self._client.post(self.url, content=body, headers=headers)
                if reply.status_code < 300:
                    DELIVERED.labels(self.source).inc()
                    return
                if reply.status_code != 429 and reply.status_code < 500:
                    break  # the receiver refuses this event: retrying will not help
            except httpx.HTTPError:
                pass
            if attempt + 1 < self.attempts:  # no wait after the last try: it holds the queue
                await asyncio.sleep(self.backoff * 2**attempt)
        FAILED.labels(self.source).inc()
        log.warning("webhook event not delivered", extra={"attempts": attempt + 1})
