"""JWKS fetched from a real loopback IdP (aiohttp, in-process): key rotation, the
unknown-kid refetch limit, outages, and hostile responses."""

from __future__ import annotations

import asyncio
import json
import time

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from services.auth.jwt_tokens import InvalidToken, JwksKeys, JwtSettings, JwtVerifier

ISSUER = "https://idp.example.com/"
AUDIENCE = "lockgate"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
MIB = 1 << 20


def jwk(private_key, kid: str) -> dict:
    public = private_key.public_key()
    algorithm = RSAAlgorithm if isinstance(public, rsa.RSAPublicKey) else ECAlgorithm
    return {**algorithm.to_jwk(public, as_dict=True), "kid": kid, "use": "sig"}


def sign(key=RSA_KEY, kid: str = "rsa1", alg: str = "RS256") -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "email": "ada@example.com",
              "iat": now, "exp": now + 600}
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


class Idp:
    """A fake identity provider serving /jwks; tests change what it answers."""

    def __init__(self):
        self.keys = [jwk(RSA_KEY, "rsa1")]
        self.requests = 0
        self.body: bytes | None = None  # raw override
        self.status = 200
        self.chunked = False
        self.stall = False  # hold /jwks answers until stop()
        self.release = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def jwks(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if self.stall:
            await self.release.wait()
        body = self.body if self.body is not None else json.dumps({"keys": self.keys}).encode()
        if not self.chunked:
            return web.Response(body=body, status=self.status, content_type="application/json")
        # Streamed without Content-Length: the size limit must hold while reading.
        resp = web.StreamResponse(status=self.status)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(body), 64 * 1024):
            await resp.write(body[i:i + 64 * 1024])
        await resp.write_eof()
        return resp

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/jwks", self.jwks)
        app.router.add_get("/moved", lambda r: web.HTTPFound("/jwks"))
        app.router.add_get("/elsewhere", self.elsewhere)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{self.port}/jwks"

    async def elsewhere(self, request: web.Request) -> web.Response:
        # Same server, but named differently: another origin as far as we know.
        raise web.HTTPFound(f"http://localhost:{self.port}/jwks")

    async def stop(self) -> None:
        self.release.set()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def idp():
    server = Idp()
    await server.start()
    yield server
    await server.stop()


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(url: str, clock: Clock | None = None, **settings) -> JwtVerifier:
    s = JwtSettings(issuer=ISSUER, audience=AUDIENCE, jwks_url=url, **settings)
    keys = JwksKeys(s, clock=clock) if clock is not None else JwksKeys(s)
    return JwtVerifier(s, keys)


async def reason(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as info:
        await verifier.verify(token)
    return info.value.message


async def test_tokens_verify_against_the_idp_keys(idp):
    verifier = make(idp.url)
    assert await verifier.keys.refresh() is True
    assert verifier.keys.kids == ("rsa1",)
    result = await verifier.verify(sign())
    assert (result.subject, result.email) == ("user-1", "ada@example.com")
    assert idp.requests == 1


async def test_the_first_token_loads_the_keys_when_nothing_has_yet(idp):
    verifier = make(idp.url)
    assert await verifier.verify(sign())
    assert idp.requests == 1


async def test_a_rotated_key_is_picked_up_on_the_unknown_kid_refetch(idp):
    clock = Clock()
    verifier = make(idp.url, clock)
    await verifier.keys.refresh()
    assert idp.requests == 1
    idp.keys = [jwk(EC_KEY, "ec2")]  # the IdP rotates: new kid, old key gone
    result = await verifier.verify(sign(EC_KEY, "ec2", "ES256"))
    assert result.subject == "user-1"
    assert idp.requests == 2
    assert verifier.keys.kids == ("ec2",)
    # The retired key no longer verifies (and it is a known kid no more).
    clock.now += 60
    assert await reason(verifier, sign()) == "token signing key is unknown"


async def test_unknown_kids_refetch_at_most_once_per_30_seconds(idp):
    clock = Clock()
    verifier = make(idp.url, clock)
    await verifier.keys.refresh()
    junk = [sign(kid=f"junk-{i}") for i in range(50)]
    results = await asyncio.gather(*(verifier.verify(t) for t in junk), return_exceptions=True)
    assert all(isinstance(r, InvalidToken) for r in results)
    assert idp.requests == 2  # the initial load and a single refetch

    clock.now += 29
    idp.keys.append(jwk(EC_KEY, "ec2"))
    assert await reason(verifier, sign(EC_KEY, "ec2", "ES256")) == "token signing key is unknown"
    assert idp.requests == 2

    clock.now += 1
    assert await verifier.verify(sign(EC_KEY, "ec2", "ES256"))
    assert idp.requests == 3
    # Known kids never cause a fetch.
    for _ in range(20):
        await verifier.verify(sign())
    assert idp.requests == 3


async def test_the_idp_going_down_keeps_the_last_good_keys(idp, caplog):
    clock = Clock()
    verifier = make(idp.url, clock)
    assert await verifier.keys.refresh() is True
    await idp.stop()
    assert await verifier.keys.refresh() is False
    assert verifier.keys.last_error == "fetch failed: ConnectError"
    assert await verifier.verify(sign())
    # An unknown kid tries the (down) IdP once and still leaves the keys alone.
    assert await reason(verifier, sign(kid="other")) == "token signing key is unknown"
    assert await verifier.verify(sign())
    assert "JWKS load failed" in caplog.text


@pytest.mark.parametrize("status", [404, 500])
async def test_an_error_status_keeps_the_last_good_keys(idp, status):
    verifier = make(idp.url)
    await verifier.keys.refresh()
    idp.status = status
    assert await verifier.keys.refresh() is False
    assert verifier.keys.last_error == f"JWKS fetch answered HTTP {status}"
    assert await verifier.verify(sign())


@pytest.mark.parametrize("chunked", [False, True])
async def test_an_oversized_jwks_response_is_refused(idp, chunked):
    verifier = make(idp.url)
    await verifier.keys.refresh()
    idp.keys = [jwk(EC_KEY, "ec2")]
    idp.body = json.dumps({"keys": idp.keys, "pad": "x" * (2 * MIB)}).encode()
    idp.chunked = chunked
    assert await verifier.keys.refresh() is False
    assert verifier.keys.last_error == "JWKS response is larger than 1 MiB"
    assert verifier.keys.kids == ("rsa1",)


async def test_a_slow_idp_times_out(idp):
    verifier = make(idp.url, fetch_timeout_seconds=0.2)
    idp.stall = True
    started = time.monotonic()
    assert await verifier.keys.refresh() is False
    assert time.monotonic() - started < 2
    assert verifier.keys.last_error == "fetch failed: TimeoutError"


async def test_a_redirect_within_the_idp_is_followed(idp):
    verifier = make(idp.url.replace("/jwks", "/moved"))
    assert await verifier.keys.refresh() is True
    assert await verifier.verify(sign())


async def test_a_redirect_to_another_host_is_refused(idp):
    verifier = make(idp.url.replace("/jwks", "/elsewhere"))
    assert await verifier.keys.refresh() is False
    assert verifier.keys.last_error == "JWKS redirect to another origin refused"
    assert idp.requests == 0


async def test_the_background_loop_refreshes_and_stops(idp):
    verifier = make(idp.url, refresh_seconds=0.05)
    keys = verifier.keys
    keys.start()
    try:
        for _ in range(200):
            if idp.requests >= 3:
                break
            await asyncio.sleep(0.01)
        assert idp.requests >= 3
        assert await verifier.verify(sign())
    finally:
        await keys.close()
    seen = idp.requests
    await asyncio.sleep(0.15)
    assert idp.requests == seen
