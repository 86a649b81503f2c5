"""Opt-in body logging: the redacted request and response of calls to APIs whose
owners turned `log_bodies` on, carried to the ledger in the usage entry.

Whether a call opted in comes from the router's copy of the registry's watch
stream (never from the request): the prompt API version the call invokes, or
the API version its model alias is bound to. Bodies of other calls are never
kept, not even in memory. The gateway config's `call_log` section sets the
PII patterns and the size bound (lockgate/redact.py does the redaction).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lockgate.governance_view import GovernanceView
from lockgate.identity import Identity
from lockgate.redact import DEFAULT_PII, InvalidPattern, Redactor, compile_pii

log = logging.getLogger("lockgate.router.call_bodies")

#: A body that could not be prepared (never the unredacted text).
UNAVAILABLE = "[body not logged: it could not be prepared]"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RedactPattern(_Strict):
    #: Shown in the replacement: `[REDACTED:<name>]`.
    name: str
    #: A regular expression (the `regex` engine; bounded in time per body).
    pattern: str
    #: Only digit runs passing the Luhn checksum are redacted (card numbers).
    luhn: bool = False


class CallLogConfig(_Strict):
    """Body logging of opted-in APIs (secrets are always redacted on top of these)."""

    #: PII patterns; replaces the shipped defaults (e-mail addresses, card numbers).
    redact: list[RedactPattern] = Field(
        default_factory=lambda: [RedactPattern(name=n, pattern=p, luhn=luhn)
                                 for n, p, luhn in DEFAULT_PII],
        max_length=50,
    )
    #: Bound on each stored body (UTF-8 bytes, after redaction); longer ones are cut.
    #: At most 256 KiB: both bodies and the entry fit one spool record (1 MiB).
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=256 * 1024)

    @model_validator(mode="after")
    def _patterns_compile(self) -> CallLogConfig:
        try:
            self.redactor()
        except InvalidPattern as exc:
            raise ValueError(str(exc)) from None
        return self

    def redactor(self) -> Redactor:
        return Redactor([compile_pii(p.name, p.pattern, p.luhn) for p in self.redact])


#: Characters of streamed text kept before redaction (a margin over the bound).
def _text_bound(max_bytes: int) -> int:
    return 2 * max_bytes + 1024


@dataclass(slots=True)
class BodyCapture:
    """What one opted-in call sent and got back, until it is metered."""

    request: dict
    reply: dict | None = None
    #: Streamed calls: the assembled text of the answer (bounded).
    text: list[str] = field(default_factory=list)
    text_length: int = 0
    text_bound: int = 0

    def add_chunk(self, chunk: dict) -> None:
        """Keep a stream chunk's text (content and tool-call arguments)."""
        if self.text_length >= self.text_bound:
            return
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            pieces = [delta.get("content")]
            for call in delta.get("tool_calls") or ():
                pieces.append(((call or {}).get("function") or {}).get("arguments"))
            for piece in pieces:
                if isinstance(piece, str) and piece:
                    self.text.append(piece)
                    self.text_length += len(piece)


class BodyLog:
    def __init__(self, governance: GovernanceView | None, config: CallLogConfig | None = None):
        self.governance = governance
        self.configure(config or CallLogConfig())

    def configure(self, config: CallLogConfig) -> None:
        """Apply a (re)loaded gateway config's `call_log` section."""
        self.redactor = config.redactor()
        self.max_bytes = config.max_body_bytes

    def opted_in(self, caller: Identity, alias: str) -> bool:
        view = self.governance
        if view is None or not caller.api_id:
            return False  # ungoverned calls have no API to opt in
        route = view.prompts.get(f"{caller.api_id}/{caller.api_version}")
        if route is not None:
            return route.log_bodies
        binding = view.binding(alias)
        return binding is not None and binding.api_id == caller.api_id and binding.log_bodies

    def capture(self, caller: Identity, alias: str, request: dict) -> BodyCapture | None:
        """A capture for this call when its API opted in; None (nothing kept) otherwise."""
        if not self.opted_in(caller, alias):
            return None
        return BodyCapture(request=request, text_bound=_text_bound(self.max_bytes))

    def entry_fields(self, capture: BodyCapture | None) -> dict[str, str]:
        """request_body / response_body of the usage entry: redacted and bounded."""
        if capture is None:
            return {}
        try:
            request = orjson.dumps(capture.request).decode()
            if capture.reply is not None:
                response = orjson.dumps(capture.reply).decode()
            else:
                response = "".join(capture.text)
            return {
                "request_body": self.redactor.bounded(request, self.max_bytes),
                "response_body": self.redactor.bounded(response, self.max_bytes),
            }
        except Exception:  # noqa: BLE001 - the usage entry matters more than its bodies
            log.exception("call bodies could not be prepared; logged without them")
            return {"request_body": UNAVAILABLE, "response_body": UNAVAILABLE}
