"""JSON logs, one object per line, with secrets redacted before they are written.

Redaction is a last line of defence: code must not log secrets in the first
place, but a key pasted into a model name or an upstream error body must not
reach the log either.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time

import orjson

#: The request being served, set by the gRPC request-id interceptor.
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "lockgate_request_id", default=None
)

_SECRET_PATTERNS = [
    re.compile(r"lg_[A-Za-z0-9_\-]{8,}"),  # Lockgate API keys
    re.compile(r"sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{8,}"),  # OpenAI / Anthropic keys
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-~+/]+=*"),
    re.compile(r"(?i)((?:api[-_]?key|authorization|password|secret)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"),
]
REDACTED = "[REDACTED]"


def redact(text: str) -> str:
    """Replace anything that looks like a credential with [REDACTED]."""
    for pattern in _SECRET_PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, hosted: tuple[str, ...] = ()):
        super().__init__()
        self.service = service
        #: A process hosting several services labels each record with the service
        #: whose code logged it (logger `lockgate.<name>…` or `services.<name>…`),
        #: else (shared code) with `service`.
        self._owners = tuple(
            (f"{root}.{name}", name) for name in hosted for root in ("lockgate", "services")
        ) if len(hosted) > 1 else ()

    def _service_of(self, logger: str) -> str:
        for prefix, name in self._owners:
            if logger.startswith(prefix) and logger[len(prefix):len(prefix) + 1] in ("", "."):
                return name
        return self.service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self._service_of(record.name),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        line = orjson.dumps(entry, default=str).decode()
        return redact(line)


def setup_logging(service: str, level: str = "info", hosted: tuple[str, ...] = ()) -> None:
    """Send every logger's records to stderr as redacted JSON lines (`hosted`:
    the services this process runs, when there are several)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service, hosted))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiosqlite", "sqlalchemy.engine", "asyncio", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
