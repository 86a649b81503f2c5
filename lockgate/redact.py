"""Redaction of logged bodies: secrets always, configured PII patterns on top.

Used for the request and response bodies of APIs that opted in to body
logging (the router puts them in the usage entry; the ledger stores them with
the call log) and for query strings in the call log's paths.

- Secrets are always redacted, whatever the configuration: OpenAI, Anthropic
  and Lockgate API keys, bearer tokens, JWTs, AWS access keys and secret keys,
  private key blocks, GitHub, Google, Slack and Stripe tokens, passwords in URLs.
- PII patterns come from the gateway config (`call_log.redact`); the shipped
  defaults catch e-mail addresses and payment card numbers (Luhn-checked, so
  timestamps and ids of the same length stay).

Each match becomes `[REDACTED:<name>]`. Patterns run on the `regex` engine
with a time budget per text (like lockgate/prompts/schema.py): a pattern that
backtracks badly on hostile input costs bounded time, and the text is then
replaced whole (`RedactionTimeout`: fail closed, never logged unredacted).
Input is bounded before it is scanned; output is bounded to `max_bytes`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import regex

#: The shipped PII patterns (gateway config `call_log.redact` replaces them).
DEFAULT_PII: tuple[tuple[str, str, bool], ...] = (
    ("email", r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}",
     False),
    ("card_number", r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])", True),
)
MAX_PATTERN_LENGTH = 1000
MAX_PATTERNS = 50
NAME = regex.compile(r"[a-z][a-z0-9_]{0,31}")
#: Time one text may spend in patterns (secrets and PII together), in seconds.
DEFAULT_TIME_BUDGET = 0.25
#: What a text becomes when its redaction did not finish in time.
TIMED_OUT = "[REDACTED:timeout]"
TRUNCATED = "…[truncated]"

# Secrets, applied in this order: longer, more specific forms first (sk-ant-
# before sk-; a bearer token before the JWT it carries). One pattern each: every
# one starts with a literal the engine scans for quickly, which one alternation
# of them all would lose (measured: 3x slower).
_SECRETS = (
    # A private key block, also when the text was cut before its END line.
    ("private_key",
     r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
     r"[\s\S]*?(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|\Z)"),
    ("bearer_token", r"(?i:(\bbearer[ \t]+))[A-Za-z0-9._~+/=-]{8,}"),
    ("anthropic_key", r"\bsk-ant-[A-Za-z0-9_-]{16,}"),
    ("openai_key", r"\bsk-[A-Za-z0-9_-]{16,}"),
    ("lockgate_key", r"\blg_[A-Za-z0-9]{6,}_[A-Za-z0-9]{16,}"),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
    ("aws_access_key", r"\b(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA)[A-Z0-9]{16}\b"),
    ("aws_secret_key",
     r"(?i:aws_?secret_?(?:access_?)?key)[\"'\\]*\s*[:=]\s*[\"'\\]*[A-Za-z0-9/+=]{40}\b"),
    ("github_token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    ("google_api_key", r"\bAIza[0-9A-Za-z_-]{35}"),
    ("slack_token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    ("stripe_key", r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"),
    # user:password@ in a URL: the password goes.
    ("url_password", r"(://[^/\s:@]{1,256}:)[^/\s@]{1,256}(?=@)"),
)
#: Kinds whose first group is kept: the auth scheme, the URL up to the password.
_KEEPS_PREFIX = frozenset({"bearer_token", "url_password"})
_SECRET_PATTERNS = tuple(
    (regex.compile(body),
     f"\\g<1>[REDACTED:{name}]" if name in _KEEPS_PREFIX else f"[REDACTED:{name}]")
    for name, body in _SECRETS
)

#: Query parameters whose value is a credential whatever it looks like.
SECRET_PARAMS = frozenset({
    "key", "api_key", "apikey", "api-key", "token", "access_token", "refresh_token",
    "id_token", "auth", "authorization", "secret", "client_secret", "password", "passwd",
    "signature", "sig", "x-amz-signature", "x-amz-credential", "x-goog-signature", "code",
})


class InvalidPattern(ValueError):
    """A configured redaction pattern cannot be used; the message says which and why."""


class RedactionTimeout(Exception):
    """The patterns did not finish within the time budget."""


@dataclass(frozen=True, slots=True)
class PiiPattern:
    name: str
    pattern: regex.Pattern
    #: Only digit runs that pass the Luhn checksum count (card numbers).
    luhn: bool = False


def compile_pii(name: str, pattern: str, luhn: bool = False) -> PiiPattern:
    """A configured PII pattern, validated; InvalidPattern says what is wrong."""
    if not NAME.fullmatch(name):
        raise InvalidPattern(f"redact pattern name {name!r}: 1-32 lower-case letters, digits "
                             "and underscores, starting with a letter")
    if not pattern:
        raise InvalidPattern(f"redact pattern {name!r} is empty")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidPattern(f"redact pattern {name!r} is longer than {MAX_PATTERN_LENGTH} "
                             "characters")
    try:
        compiled = regex.compile(pattern)
    except (regex.error, RecursionError, OverflowError) as exc:
        raise InvalidPattern(f"redact pattern {name!r} is not a valid regular expression "
                             f"({exc})") from None
    if compiled.fullmatch("") is not None:
        # It would match between every two characters: nothing useful, much noise.
        raise InvalidPattern(f"redact pattern {name!r} matches the empty string")
    return PiiPattern(name, compiled, luhn)


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise RedactionTimeout
    return left


def redact_secrets(text: str, *, deadline: float | None = None) -> str:
    """Every secret in `text` replaced by `[REDACTED:<kind>]`."""
    deadline = time.monotonic() + DEFAULT_TIME_BUDGET if deadline is None else deadline
    try:
        for pattern, replacement in _SECRET_PATTERNS:
            text = pattern.sub(replacement, text, timeout=_remaining(deadline))
    except TimeoutError:
        raise RedactionTimeout from None
    return text


def _cut_at_token(text: str, limit: int) -> str:
    """The first `limit` characters, without the partial token the cut may leave
    (half a key must not survive because its other half was cut off)."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = len(cut)
    while end > 0 and (cut[end - 1].isalnum() or cut[end - 1] in "_-+/=.~%@:"):
        end -= 1
    return cut[:end]


def _bounded(text: str, max_bytes: int) -> str:
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    marker = TRUNCATED.encode()
    keep = max(0, max_bytes - len(marker))
    return data[:keep].decode(errors="ignore") + TRUNCATED


class Redactor:
    """Secrets and configured PII patterns, applied within a time budget."""

    def __init__(
        self,
        pii: Sequence[PiiPattern] | None = None,
        *,
        time_budget: float = DEFAULT_TIME_BUDGET,
    ):
        self.pii = (
            tuple(compile_pii(*p) for p in DEFAULT_PII) if pii is None else tuple(pii)
        )
        if len(self.pii) > MAX_PATTERNS:
            raise InvalidPattern(f"at most {MAX_PATTERNS} redact patterns")
        names = [p.name for p in self.pii]
        if len(set(names)) != len(names):
            raise InvalidPattern("redact pattern names must be unique")
        self.time_budget = time_budget

    def redact(self, text: str) -> str:
        """`text` with secrets and PII replaced; RedactionTimeout when over budget."""
        deadline = time.monotonic() + self.time_budget
        text = redact_secrets(text, deadline=deadline)
        for pii in self.pii:
            replacement = f"[REDACTED:{pii.name}]"
            if pii.luhn:
                def replace(match: regex.Match, replacement: str = replacement) -> str:
                    digits = "".join(c for c in match.group() if c.isdigit())
                    return replacement if luhn_valid(digits) else match.group()
            else:
                replace = replacement  # type: ignore[assignment]
            try:
                text = pii.pattern.sub(replace, text, timeout=_remaining(deadline))
            except TimeoutError:
                raise RedactionTimeout from None
        return text

    def bounded(self, text: str, max_bytes: int) -> str:
        """Redacted and at most `max_bytes` of UTF-8; a text whose redaction did not
        finish in time becomes TIMED_OUT (fail closed)."""
        if not text:
            return ""
        # Scan at most twice the kept size: redaction only shortens what it touches.
        window = _cut_at_token(text, 2 * max_bytes + 1024)
        try:
            redacted = self.redact(window)
        except RedactionTimeout:
            return TIMED_OUT
        if len(window) < len(text):
            redacted += TRUNCATED
        return _bounded(redacted, max_bytes)


def redact_query(path: str, *, max_length: int = 1024) -> str:
    """A request path with credential-like query values replaced by `[REDACTED]`
    (by parameter name, or because the value looks like a secret), cut to max_length."""
    base, sep, query = path.partition("?")
    if not sep:
        return _cut_at_token(path, max_length)
    deadline = time.monotonic() + DEFAULT_TIME_BUDGET
    parts = []
    for pair in query.split("&"):
        name, has_value, value = pair.partition("=")
        if has_value and value:
            try:
                secret = (name.lower() in SECRET_PARAMS
                          or redact_secrets(value, deadline=deadline) != value)
            except RedactionTimeout:
                secret = True
            if secret:
                value = "[REDACTED]"
        parts.append(f"{name}={value}" if has_value else name)
    return _cut_at_token(f"{base}?{'&'.join(parts)}", max_length)
