"""JWT bearer tokens for human users, verified against an identity provider's JWKS.

A user signs in at the organisation's IdP and presents its JWT as a Bearer
token; the auth service calls `JwtVerifier.verify` when that token is not a
Lockgate API key. Only asymmetric algorithms are accepted: the JWKS is public,
so an HMAC "key" taken from it would let anyone mint tokens (the classic
RS256/HS256 confusion). Each token's `alg` must be allowed AND fit the type of
the key its `kid` names; the key is never chosen by the algorithm.

`JwksKeys` keeps the IdP's signing keys in memory: it reloads them every
`refresh_seconds` in the background, and once per 30 s at most when a token
names an unknown `kid` (a key rotation), so a flood of junk tokens cannot make
us hammer the IdP. A failed reload keeps the last good keys.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt import exceptions as jwt_errors
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from lockgate.errors import Unauthenticated
from lockgate.metrics import Counter

log = logging.getLogger("lockgate.auth.jwt")

REFRESHES = Counter("lockgate_jwks_refreshes_total", "JWKS loads", ["result"])

#: Accepted algorithms -> (JWK kty, allowed JWK curves or None for any).
#: Binding the curve stops e.g. an ES256 token being checked with a P-384 key.
ALGORITHMS: dict[str, tuple[str, frozenset[str] | None]] = {
    **{alg: ("RSA", None) for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")},
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}
_KEY_PARSERS = {"RSA": RSAAlgorithm.from_jwk, "EC": ECAlgorithm.from_jwk, "OKP": OKPAlgorithm.from_jwk}
_PRIVATE_KEYS = (
    rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey,
)

MAX_TOKEN_CHARS = 8192
MAX_JWKS_BYTES = 1 << 20  # real JWKS documents are a few KiB
MIN_RSA_BITS = 2048
MAX_REDIRECTS = 3
#: Floor between reloads caused by unknown kids (and the retry delay after a
#: failed background reload).
MISS_REFETCH_SECONDS = 30.0
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


class InvalidToken(Unauthenticated):
    """A JWT that is not acceptable. The message is shown to the caller, so it
    never carries the token, its claims or key material."""

    default_code = "invalid_token"


class JwksError(Exception):
    """The JWKS could not be loaded (message is safe to log)."""


@dataclass(frozen=True, slots=True)
class JwtSettings:
    issuer: str
    audience: str
    #: Exactly one of the two: a local JWKS file, or the IdP's JWKS URL
    #: (admin configuration only; never taken from a token's `jku`/`iss`).
    jwks_file: Path | None = None
    jwks_url: str | None = None
    algorithms: tuple[str, ...] = ("RS256", "ES256", "PS256", "EdDSA")
    email_claim: str = "email"
    leeway_seconds: int = 30
    refresh_seconds: float = 300
    fetch_timeout_seconds: float = 3

    def __post_init__(self) -> None:
        # Accept a list or a single name from env-driven settings; store a tuple.
        algs = (self.algorithms,) if isinstance(self.algorithms, str) else tuple(self.algorithms)
        object.__setattr__(self, "algorithms", algs)
        if not algs:
            raise ValueError("jwt algorithms: at least one algorithm is required")
        for alg in algs:
            if alg.lower() == "none" or alg.upper().startswith("HS"):
                raise ValueError(
                    f"jwt algorithms: {alg!r} is not allowed; only asymmetric algorithms "
                    f"verify against a public JWKS ({', '.join(ALGORITHMS)})"
                )
            if alg not in ALGORITHMS:
                raise ValueError(
                    f"jwt algorithms: unsupported {alg!r}; choose from {', '.join(ALGORITHMS)}"
                )
        if isinstance(self.jwks_file, str):
            object.__setattr__(self, "jwks_file", Path(self.jwks_file))
        if (self.jwks_file is None) == (self.jwks_url is None):
            raise ValueError("jwt: set exactly one of jwks_file and jwks_url")
        if self.jwks_url is not None:
            try:
                url = httpx.URL(self.jwks_url)
            except httpx.InvalidURL:
                url = httpx.URL()
            if url.scheme not in ("http", "https") or not url.host:
                raise ValueError("jwt jwks_url: must be an http:// or https:// URL with a host")
        for name in ("issuer", "audience", "email_claim"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"jwt {name}: must be a non-empty string")
        if self.leeway_seconds < 0:
            raise ValueError("jwt leeway_seconds: must be >= 0")
        if not self.refresh_seconds > 0 or not self.fetch_timeout_seconds > 0:
            raise ValueError("jwt refresh_seconds and fetch_timeout_seconds: must be > 0")


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    subject: str
    email: str
    issuer: str
    expires_at: datetime  # UTC
    claims: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class JwkKey:
    kid: str | None
    kty: str
    crv: str | None
    #: The JWK's own `alg`, when it declares one: then only that algorithm.
    alg: str | None
    public_key: Any = field(repr=False)

    def fits(self, alg: str) -> bool:
        kty, curves = ALGORITHMS[alg]
        return (
            self.kty == kty
            and (curves is None or self.crv in curves)
            and (self.alg is None or self.alg == alg)
        )


@dataclass(frozen=True, slots=True)
class _KeySet:
    by_kid: dict[str, JwkKey]
    all: tuple[JwkKey, ...]


def looks_like_jwt(token: str) -> bool:
    """Compact JWS shape: three non-empty base64url segments, at most 8 KiB."""
    return len(token) <= MAX_TOKEN_CHARS and _JWT_SHAPE.fullmatch(token) is not None


def parse_jwks(data: bytes) -> _KeySet:
    """The usable signature keys of a JWKS document (RFC 7517); raises JwksError."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise JwksError("JWKS is not valid JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise JwksError('JWKS has no "keys" list')
    by_kid: dict[str, JwkKey] = {}
    usable: list[JwkKey] = []
    for jwk in doc["keys"]:
        key = _parse_jwk(jwk)
        if key is None:
            continue
        if key.kid is not None:
            if key.kid in by_kid:
                log.warning("JWKS repeats a kid; the first key is used", extra={"kid": key.kid})
                continue
            by_kid[key.kid] = key
        usable.append(key)
    if not usable:
        # Swapping good keys for none would lock every user out; treat as a failure.
        raise JwksError("JWKS has no usable signature keys")
    return _KeySet(by_kid, tuple(usable))


def _parse_jwk(jwk: Any) -> JwkKey | None:
    if not isinstance(jwk, dict):
        return None
    kid, kty = jwk.get("kid"), jwk.get("kty")
    kid = kid if isinstance(kid, str) else None
    # Encryption keys and unsupported types (including "oct" secrets) are
    # simply not signing keys for us.
    if jwk.get("use", "sig") != "sig" or kty not in _KEY_PARSERS:
        log.debug("JWKS key skipped", extra={"kid": kid, "kty": kty, "use": jwk.get("use")})
        return None
    ops = jwk.get("key_ops")
    if isinstance(ops, list) and "verify" not in ops:
        return None
    try:
        key = _KEY_PARSERS[kty](jwk)
    except Exception as exc:  # one bad key must not drop the others
        # The exception text may quote the JWK: log its class only.
        log.warning("JWKS key is invalid; skipped",
                    extra={"kid": kid, "kty": kty, "error": type(exc).__name__})
        return None
    if isinstance(key, _PRIVATE_KEYS):
        # A published private key means anyone can sign: refuse it outright.
        log.warning("JWKS key contains private key material; skipped", extra={"kid": kid})
        return None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        log.warning("JWKS RSA key is too short; skipped", extra={"kid": kid, "bits": key.key_size})
        return None
    alg, crv = jwk.get("alg"), jwk.get("crv")
    return JwkKey(kid, kty, crv if isinstance(crv, str) else None,
                  alg if isinstance(alg, str) else None, key)


def _safe_source(settings: JwtSettings) -> str:
    """Where keys come from, for logs: the URL without credentials or query."""
    if settings.jwks_file is not None:
        return str(settings.jwks_file)
    url = httpx.URL(settings.jwks_url or "")
    return str(url.copy_with(userinfo=b"", query=None, fragment=None))


class JwksKeys:
    """The IdP's current signing keys, keyed by kid, kept fresh in the background.

    Runs beside the gRPC server like LivePolicy: `start()` once serving,
    `await close()` on shutdown (or drive `run()` yourself).
    """

    def __init__(
        self,
        settings: JwtSettings,
        *,
        miss_refetch_seconds: float = MISS_REFETCH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings
        self.source = _safe_source(settings)
        self.miss_refetch_seconds = miss_refetch_seconds
        self.clock = clock
        self._keys = _KeySet({}, ())
        self.loaded_at: float | None = None  # wall time of the last good load
        self.last_error = ""
        self._last_miss_fetch: float | None = None
        self._fetch_lock = asyncio.Lock()  # one fetch at a time
        self._miss_lock = asyncio.Lock()  # one unknown-kid decision at a time
        self._task: asyncio.Task | None = None
        url = httpx.URL(settings.jwks_url) if settings.jwks_url else None
        if url is not None and url.scheme == "http" and not _is_loopback(url.host):
            # Whoever can alter plain HTTP can inject keys and so mint tokens.
            log.warning("JWKS is fetched over plain http", extra={"source": self.source})

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self._keys.by_kid)

    # -- lookup -----------------------------------------------------------------------

    def _lookup(self, kid: str | None) -> JwkKey | None:
        keys = self._keys
        if kid is not None:
            return keys.by_kid.get(kid)
        # No kid in the token: unambiguous only when the IdP has a single key.
        return keys.all[0] if len(keys.all) == 1 else None

    async def key_for(self, kid: str | None) -> JwkKey:
        """The key a token names; an unknown kid triggers one rate-limited reload."""
        key = self._lookup(kid)
        if key is None:
            async with self._miss_lock:
                key = self._lookup(kid)  # a reload may have landed while we waited
                now = self.clock()
                if key is None and (
                    self._last_miss_fetch is None
                    or now - self._last_miss_fetch >= self.miss_refetch_seconds
                ):
                    self._last_miss_fetch = now
                    await self.refresh()
                    key = self._lookup(kid)
        if key is None:
            raise InvalidToken("token signing key is unknown")
        return key

    # -- loading ----------------------------------------------------------------------

    async def refresh(self) -> bool:
        """Load the JWKS now; True on success. On failure the old keys stay."""
        async with self._fetch_lock:
            try:
                async with asyncio.timeout(self.settings.fetch_timeout_seconds):
                    data = await self._read()
                keys = parse_jwks(data)
            except Exception as exc:  # whatever went wrong, the last good keys stay
                self.last_error = (
                    str(exc) if isinstance(exc, JwksError) else f"fetch failed: {type(exc).__name__}"
                )
                REFRESHES.labels("failed").inc()
                log.warning(
                    "JWKS load failed; the last good keys stay in use",
                    extra={"source": self.source, "error": self.last_error,
                           "kids": len(self._keys.by_kid)},
                )
                return False
            if set(keys.by_kid) != set(self._keys.by_kid) or self.loaded_at is None:
                log.info("JWKS loaded", extra={"source": self.source, "kids": sorted(keys.by_kid)})
            self._keys = keys
            self.loaded_at = time.time()
            self.last_error = ""
            REFRESHES.labels("ok").inc()
            return True

    async def _read(self) -> bytes:
        if self.settings.jwks_file is not None:
            return await asyncio.to_thread(_read_file, self.settings.jwks_file)
        return await _fetch(httpx.URL(self.settings.jwks_url), self.settings.fetch_timeout_seconds)

    # -- background -------------------------------------------------------------------

    async def run(self) -> None:
        """Load now, then every refresh_seconds (sooner again after a failure)."""
        while True:
            ok = await self.refresh()
            delay = self.settings.refresh_seconds
            await asyncio.sleep(delay if ok else min(delay, MISS_REFETCH_SECONDS))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="jwks-refresh")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _read_file(path: Path) -> bytes:
    with path.open("rb") as f:
        data = f.read(MAX_JWKS_BYTES + 1)
    if len(data) > MAX_JWKS_BYTES:
        raise JwksError("JWKS file is larger than 1 MiB")
    return data


async def _fetch(url: httpx.URL, io_timeout: float) -> bytes:
    """GET the JWKS: bounded size, redirects only within the same origin."""
    async with httpx.AsyncClient(
        timeout=io_timeout, follow_redirects=False, headers={"Accept": "application/json"}
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            async with client.stream("GET", url) as resp:
                if resp.is_redirect and resp.next_request is not None:
                    target = resp.next_request.url
                    # A redirect elsewhere could hand us an attacker's keys.
                    if (target.scheme, target.host, target.port) != (url.scheme, url.host, url.port):
                        raise JwksError("JWKS redirect to another origin refused")
                    url = target
                    continue
                if resp.status_code != 200:
                    raise JwksError(f"JWKS fetch answered HTTP {resp.status_code}")
                length = resp.headers.get("content-length", "")
                if length.isdigit() and int(length) > MAX_JWKS_BYTES:
                    raise JwksError("JWKS response is larger than 1 MiB")
                body = bytearray()
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise JwksError("JWKS response is larger than 1 MiB")
                return bytes(body)
    raise JwksError("JWKS fetch redirected too many times")


# PyJWT's failures -> user-safe reasons. Ordered: subclasses before their bases
# (InvalidSignatureError is a DecodeError); the final rows catch anything a
# future PyJWT adds.
_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt_errors.ExpiredSignatureError, "token expired"),
    (jwt_errors.ImmatureSignatureError, "token is not yet valid"),
    (jwt_errors.InvalidIssuerError, "token issuer is not trusted"),
    (jwt_errors.InvalidAudienceError, "token audience is not accepted"),
    (jwt_errors.InvalidIssuedAtError, "token issue time is invalid"),
    (jwt_errors.InvalidSubjectError, "token subject is invalid"),
    (jwt_errors.InvalidJTIError, "token id is invalid"),
    (jwt_errors.InvalidSignatureError, "token signature is invalid"),
    (jwt_errors.InvalidAlgorithmError, "token algorithm is not allowed"),
    (jwt_errors.DecodeError, "token is malformed"),
    (jwt_errors.InvalidKeyError, "token signing key is unusable"),
    (jwt_errors.InvalidTokenError, "token is invalid"),
    (jwt_errors.PyJWTError, "token is invalid"),
)
#: Claims every token must carry (PyJWT checks presence; values checked below).
REQUIRED_CLAIMS = ("exp", "iss", "aud", "sub")


def reason_for(exc: Exception) -> str:
    if isinstance(exc, jwt_errors.MissingRequiredClaimError):
        return f"token has no {exc.claim} claim"  # claim names come from REQUIRED_CLAIMS
    for cls, reason in _REASONS:
        if isinstance(exc, cls):
            return reason
    return "token is invalid"


class JwtVerifier:
    def __init__(self, settings: JwtSettings, keys: JwksKeys):
        self.settings = settings
        self.keys = keys

    async def verify(self, token: str) -> VerifiedToken:
        """The token's identity, or InvalidToken with a user-safe reason."""
        s = self.settings
        if not isinstance(token, str) or not looks_like_jwt(token):
            raise InvalidToken("token is malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt_errors.PyJWTError as exc:
            raise InvalidToken(reason_for(exc)) from None
        alg = header.get("alg")
        # Checked before any key lookup, so HS*/none never reach a key.
        if not isinstance(alg, str) or alg not in s.algorithms:
            raise InvalidToken("token algorithm is not allowed")
        key = await self.keys.key_for(header.get("kid"))
        if not key.fits(alg):
            raise InvalidToken("token algorithm does not match its signing key")
        try:
            claims = jwt.decode(
                token,
                key.public_key,
                algorithms=[alg],
                audience=s.audience,
                issuer=s.issuer,
                leeway=s.leeway_seconds,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt_errors.PyJWTError as exc:
            # `from None`: PyJWT's messages may quote header values.
            raise InvalidToken(reason_for(exc)) from None

        subject = claims["sub"]
        if not subject:
            raise InvalidToken("token has no sub claim")
        exp = claims["exp"]
        # PyJWT accepts numeric strings for exp; RFC 7519 says NumericDate.
        if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
            raise InvalidToken("token expiry is invalid")
        try:
            expires_at = datetime.fromtimestamp(exp, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise InvalidToken("token expiry is invalid") from None
        email = claims.get(s.email_claim)
        if not isinstance(email, str) or not email.strip():
            raise InvalidToken("token has no email")
        # OIDC: an address the IdP has not verified must not name a Lockgate user.
        if claims.get("email_verified") in (False, "false"):
            raise InvalidToken("token email is not verified")
        return VerifiedToken(subject, email, claims["iss"], expires_at, claims)
