"""Router use cases: alias -> deployments -> provider call, with failover and metering."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from google.protobuf.timestamp_pb2 import Timestamp

from lockgate.errors import LockgateError, ModelNotFound, RateLimited, UpstreamError
from lockgate.ledger.v1 import ledger_service_pb2 as ledger_pb
from services.router.config import DeploymentConfig, GatewayConfig
from services.router.convert import token_usage
from services.router.metering import UsageRecorder
from services.router.openai_api import TokenCounts, usage_of
from services.router.providers import Provider

log = logging.getLogger("lockgate.router")


@dataclass(slots=True)
class Call:
    """One inference call: who asked, for what, and what happened (for the ledger)."""

    request_id: str
    tenant_id: str
    key_id: str
    alias: str
    streamed: bool = False
    started: float = field(default_factory=time.perf_counter)
    deployment: str = ""
    provider: str = ""
    provider_model: str = ""
    usage: TokenCounts | None = None
    first_token_at: float | None = None
    error: LockgateError | None = None
    #: The client went away before the answer was complete.
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class Target:
    deployment: str
    config: DeploymentConfig
    provider: Provider


def _retryable(exc: LockgateError) -> bool:
    return isinstance(exc, UpstreamError | RateLimited)


class Router:
    def __init__(
        self, config: GatewayConfig, providers: dict[str, Provider], recorder: UsageRecorder
    ):
        self.config = config
        self.providers = providers
        self.recorder = recorder

    def aliases(self) -> list[str]:
        return sorted(self.config.models)

    def targets(self, alias: str) -> list[Target]:
        cfg = self.config.models.get(alias)
        if cfg is None:
            raise ModelNotFound(
                f"The model `{alias}` does not exist or you do not have access to it.",
                param="model",
            )
        out = []
        for name in cfg.deployments:
            dep = self.config.deployments[name]
            out.append(Target(name, dep, self.providers[dep.provider]))
        return out

    async def chat(self, call: Call, body: dict) -> dict:
        """A complete chat completion; fails over to the next deployment on retryable errors."""
        self.recorder.check_capacity()
        try:
            targets = self.targets(call.alias)
            last: LockgateError | None = None
            for target in targets:
                self._aim(call, target)
                try:
                    reply = await target.provider.chat(
                        body, target.config.model, self.config.timeouts_of(target.deployment)
                    )
                except LockgateError as exc:
                    last = exc
                    if not _retryable(exc):
                        raise
                    log.warning("deployment failed", extra={"deployment": target.deployment,
                                                              "error": exc.code})
                    continue
                call.usage = usage_of(reply)
                return reply
            assert last is not None
            raise last
        except LockgateError as exc:
            call.error = exc
            raise
        finally:
            self.meter(call)

    async def stream(self, call: Call, body: dict) -> AsyncIterator[dict]:
        """Chunks of a streamed completion. Failover happens only before the first
        chunk; after it an error propagates and the caller ends the stream in-band."""
        call.streamed = True
        self.recorder.check_capacity()
        try:
            targets = self.targets(call.alias)
            last: LockgateError | None = None
            for target in targets:
                self._aim(call, target)
                chunks = target.provider.stream_chat(
                    body, target.config.model, self.config.timeouts_of(target.deployment)
                )
                try:
                    first = await anext(chunks)
                except StopAsyncIteration:
                    last = UpstreamError(f"provider {target.provider.name!r} sent an empty stream")
                    continue
                except LockgateError as exc:
                    last = exc
                    if not _retryable(exc):
                        raise
                    continue
                call.first_token_at = time.perf_counter()
                try:
                    yield first
                    async for chunk in chunks:
                        usage = usage_of(chunk)
                        if usage is not None:
                            call.usage = usage
                        yield chunk
                finally:
                    await chunks.aclose()  # a gone client frees the provider connection now
                return
            assert last is not None
            raise last
        except LockgateError as exc:
            call.error = exc
            raise
        except (asyncio.CancelledError, GeneratorExit):
            call.cancelled = True  # what was delivered is still metered
            raise
        finally:
            self.meter(call)

    @staticmethod
    def _aim(call: Call, target: Target) -> None:
        call.deployment = target.deployment
        call.provider = target.provider.name
        call.provider_model = target.config.model

    def meter(self, call: Call) -> None:
        """Hand the call to the ledger (never blocks; see metering.py)."""
        now = time.perf_counter()
        created = Timestamp()
        created.GetCurrentTime()
        self.recorder.record(
            ledger_pb.UsageEntry(
                request_id=call.request_id,
                tenant_id=call.tenant_id,
                key_id=call.key_id,
                alias=call.alias,
                deployment=call.deployment,
                provider=call.provider,
                provider_model=call.provider_model,
                usage=token_usage(call.usage),
                latency_ms=int((now - call.started) * 1000),
                ttft_ms=int((call.first_token_at - call.started) * 1000)
                if call.first_token_at
                else 0,
                status=_status(call),
                error_type=_error_type(call),
                streamed=call.streamed,
                create_time=created,
            )
        )


def _status(call: Call) -> str:
    if call.error is not None:
        return "error"
    return "cancelled" if call.cancelled else "ok"


def _error_type(call: Call) -> str:
    if call.error is not None:
        return call.error.code or type(call.error).__name__
    return "client_cancelled" if call.cancelled else ""
