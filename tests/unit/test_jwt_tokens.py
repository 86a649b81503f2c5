"""JWT bearer tokens: signature, algorithm and claim checks against a JWKS file."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from datetime import UTC, datetime

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt import exceptions as jwt_errors
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from lockgate import errors
from services.auth.jwt_tokens import (
    MAX_JWKS_BYTES,
    InvalidToken,
    JwksKeys,
    JwtSettings,
    JwtVerifier,
    looks_like_jwt,
    reason_for,
)

ISSUER = "https://idp.example.com/"
AUDIENCE = "lockgate"

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_KEY_2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()


def jwk(private_key, kid: str | None, **extra) -> dict:
    public = private_key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        data = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        data = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        data = OKPAlgorithm.to_jwk(public, as_dict=True)
    if kid is not None:
        data["kid"] = kid
    return {**data, "use": "sig", **extra}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides) -> dict:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "email": "ada@example.com",
            "iat": now, "exp": now + 600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(key=RSA_KEY, alg: str = "RS256", kid: str | None = "rsa1", **overrides) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims(**overrides), key, algorithm=alg, headers=headers)


def forge(header: dict, payload: dict, signature: bytes = b"sig") -> str:
    """A token with any header, signed with nothing real."""
    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()),
                     b64(signature)])


DEFAULT_KEYS = [jwk(RSA_KEY, "rsa1"), jwk(EC_KEY, "ec1"), jwk(ED_KEY, "ed1")]


@pytest.fixture
def jwks_path(tmp_path):
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": DEFAULT_KEYS}))
    return path


def write_jwks(path, keys: list[dict]) -> None:
    path.write_text(json.dumps({"keys": keys}))


def make(path, **settings) -> JwtVerifier:
    s = JwtSettings(issuer=ISSUER, audience=AUDIENCE, jwks_file=path, **settings)
    return JwtVerifier(s, JwksKeys(s))


@pytest.fixture
def verifier(jwks_path) -> JwtVerifier:
    return make(jwks_path)


async def refused(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as info:
        await verifier.verify(token)
    message = info.value.message
    assert token not in message
    return message


# -- tokens that pass -------------------------------------------------------------------


async def test_a_valid_rs256_token_gives_the_identity(verifier):
    exp = int(time.time()) + 600
    token = sign(exp=exp, groups=["eng"])
    result = await verifier.verify(token)
    assert result.subject == "user-1"
    assert result.email == "ada@example.com"
    assert result.issuer == ISSUER
    assert result.expires_at == datetime.fromtimestamp(exp, tz=UTC)
    assert result.expires_at.tzinfo is UTC
    assert result.claims["groups"] == ["eng"]


@pytest.mark.parametrize(
    ("key", "alg", "kid"),
    [(EC_KEY, "ES256", "ec1"), (ED_KEY, "EdDSA", "ed1"), (RSA_KEY, "PS256", "rsa1")],
)
async def test_every_default_algorithm_verifies_with_its_key_type(verifier, key, alg, kid):
    assert (await verifier.verify(sign(key, alg, kid))).email == "ada@example.com"


async def test_an_audience_list_containing_ours_is_accepted(verifier):
    assert await verifier.verify(sign(aud=["other", AUDIENCE]))


async def test_a_token_without_kid_uses_the_only_key(tmp_path):
    path = tmp_path / "one.json"
    write_jwks(path, [jwk(RSA_KEY, "rsa1")])
    assert await make(path).verify(sign(kid=None))


async def test_a_token_without_kid_is_refused_when_the_key_is_ambiguous(verifier):
    assert await refused(verifier, sign(kid=None)) == "token signing key is unknown"


async def test_leeway_tolerates_small_clock_skew(verifier):
    now = int(time.time())
    assert await verifier.verify(sign(exp=now - 10, nbf=now + 10, iat=now + 10))


# -- claims -------------------------------------------------------------------------------


async def test_expired(verifier):
    assert await refused(verifier, sign(exp=int(time.time()) - 3600)) == "token expired"


async def test_expired_beyond_a_smaller_leeway(jwks_path):
    verifier = make(jwks_path, leeway_seconds=0)
    assert await refused(verifier, sign(exp=int(time.time()) - 10)) == "token expired"


async def test_not_before_in_the_future(verifier):
    token = sign(nbf=int(time.time()) + 3600)
    assert await refused(verifier, token) == "token is not yet valid"


async def test_issued_in_the_future(verifier):
    token = sign(iat=int(time.time()) + 3600)
    assert await refused(verifier, token) == "token is not yet valid"


async def test_wrong_issuer(verifier):
    token = sign(iss="https://evil.example.com/")
    assert await refused(verifier, token) == "token issuer is not trusted"


async def test_wrong_audience(verifier):
    assert await refused(verifier, sign(aud="someone-else")) == "token audience is not accepted"


@pytest.mark.parametrize("claim", ["exp", "iss", "aud", "sub"])
async def test_required_claims(verifier, claim):
    assert await refused(verifier, sign(**{claim: None})) == f"token has no {claim} claim"


@pytest.mark.parametrize("email", [None, 42, "", ["ada@example.com"]])
async def test_missing_or_non_string_email(verifier, email):
    assert await refused(verifier, sign(email=email)) == "token has no email"


async def test_configured_email_claim(jwks_path):
    verifier = make(jwks_path, email_claim="upn")
    token = sign(email=None, upn="ada@corp.example.com")
    assert (await verifier.verify(token)).email == "ada@corp.example.com"
    assert await refused(verifier, sign()) == "token has no email"


async def test_unverified_email_is_refused(verifier):
    assert await refused(verifier, sign(email_verified=False)) == "token email is not verified"
    assert await verifier.verify(sign(email_verified=True))


async def test_expiry_must_be_a_number(verifier):
    token = sign(exp=str(int(time.time()) + 600))
    assert await refused(verifier, token) == "token expiry is invalid"


async def test_empty_subject(verifier):
    assert await refused(verifier, sign(sub="")) == "token has no sub claim"


# -- signatures and algorithms ------------------------------------------------------------


async def test_tampered_payload(verifier):
    header, _, signature = sign().split(".")
    payload = b64(json.dumps(claims(email="admin@example.com")).encode())
    token = f"{header}.{payload}.{signature}"
    assert await refused(verifier, token) == "token signature is invalid"


async def test_signed_by_another_key_with_a_known_kid(verifier):
    assert await refused(verifier, sign(RSA_KEY_2)) == "token signature is invalid"


async def test_alg_none_is_refused(verifier):
    unsigned = jwt.encode(claims(), None, algorithm="none", headers={"kid": "rsa1"})
    assert await refused(verifier, unsigned) == "token is malformed"  # empty signature
    forged = forge({"alg": "none", "kid": "rsa1"}, claims())
    assert await refused(verifier, forged) == "token algorithm is not allowed"


@pytest.mark.parametrize("secret_form", ["pem", "jwk"])
async def test_hs256_signed_with_the_public_key_is_refused(verifier, secret_form):
    """The RS256/HS256 confusion: the public key used as an HMAC secret."""
    if secret_form == "pem":
        secret = RSA_KEY.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        secret = json.dumps(jwk(RSA_KEY, "rsa1")).encode()
    signing_input = (
        f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': 'rsa1'}).encode())}."
        f"{b64(json.dumps(claims()).encode())}"
    )
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64(mac)}"
    assert await refused(verifier, token) == "token algorithm is not allowed"


async def test_algorithm_outside_the_configured_list(jwks_path):
    verifier = make(jwks_path, algorithms=("ES256",))
    assert await refused(verifier, sign()) == "token algorithm is not allowed"


async def test_algorithm_must_fit_the_key_type(verifier):
    # Properly signed with the EC key, but naming the RSA key's kid.
    token = sign(EC_KEY, "ES256", kid="rsa1")
    assert await refused(verifier, token) == "token algorithm does not match its signing key"
    token = sign(RSA_KEY, "RS256", kid="ec1")
    assert await refused(verifier, token) == "token algorithm does not match its signing key"


async def test_ec_curve_must_fit_the_algorithm(jwks_path):
    verifier = make(jwks_path, algorithms=("ES256", "ES384"))
    p384 = ec.generate_private_key(ec.SECP384R1())
    token = sign(p384, "ES384", kid="ec1")  # ec1 is a P-256 key
    assert await refused(verifier, token) == "token algorithm does not match its signing key"


async def test_a_jwk_alg_pins_the_algorithm(tmp_path):
    path = tmp_path / "pinned.json"
    write_jwks(path, [jwk(RSA_KEY, "rsa1", alg="RS256")])
    verifier = make(path)
    assert await verifier.verify(sign(alg="RS256"))
    token = sign(alg="PS256")
    assert await refused(verifier, token) == "token algorithm does not match its signing key"


async def test_unknown_kid(verifier):
    assert await refused(verifier, sign(kid="nope")) == "token signing key is unknown"


# -- token shape ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b", "a.b.c.d", "a..c", "a.b.", "a.b.c=", "a.b.c\n", " a.b.c", "a.b.c!",
     "lg_abc", "a.é.c"],
)
def test_looks_like_jwt_rejects_other_shapes(token):
    assert looks_like_jwt(token) is False


def test_looks_like_jwt_accepts_compact_tokens_up_to_8_kib():
    assert looks_like_jwt(sign())
    assert looks_like_jwt("a.b." + "c" * (8192 - 4))
    assert not looks_like_jwt("a.b." + "c" * (8192 - 3))


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("not-a-token", "token is malformed"),
        ("a.b.c", "token is malformed"),  # the header is not base64url JSON
        (b64(b"[1]") + ".e30.c2ln", "token is malformed"),  # the header is not an object
        (sign() + "x" * 9000, "token is malformed"),  # over 8 KiB
        ("e30.e30.e30", "token algorithm is not allowed"),  # no alg
        (forge({"alg": "RS256", "kid": 7}, claims()), "token is invalid"),
        (forge({"alg": "RS256", "kid": "rsa1", "crit": ["x"], "x": 1}, claims()),
         "token is invalid"),
    ],
)
async def test_malformed_tokens(verifier, token, reason):
    assert await refused(verifier, token) == reason


async def test_an_oversized_token_is_refused_before_any_parsing(verifier):
    token = forge({"alg": "RS256", "kid": "rsa1"}, claims(pad="x" * 9000))
    assert await refused(verifier, token) == "token is malformed"


# -- the JWKS -----------------------------------------------------------------------------


async def test_keys_not_for_signatures_are_skipped(tmp_path):
    secret = {"kty": "oct", "kid": "oct1", "k": b64(b"0" * 32), "use": "sig"}
    path = tmp_path / "mixed.json"
    write_jwks(path, [
        jwk(RSA_KEY, "enc1", use="enc"),
        jwk(RSA_KEY, "ops1", key_ops=["encrypt"]),
        secret,
        {"kty": "XYZ", "kid": "odd"},
        "not a key",
        jwk(EC_KEY, "ec1"),
    ])
    verifier = make(path)
    assert await verifier.keys.refresh() is True
    assert verifier.keys.kids == ("ec1",)
    assert await refused(verifier, sign(kid="enc1")) == "token signing key is unknown"
    assert await refused(verifier, sign(kid="ops1")) == "token signing key is unknown"
    hs = jwt.encode(claims(), b"0" * 32, algorithm="HS256", headers={"kid": "oct1"})
    assert await refused(verifier, hs) == "token algorithm is not allowed"


async def test_private_short_and_broken_keys_are_skipped_without_logging_them(tmp_path, caplog):
    private = RSAAlgorithm.to_jwk(RSA_KEY, as_dict=True) | {"kid": "leaked"}
    short = jwk(rsa.generate_private_key(public_exponent=65537, key_size=1024), "short")
    broken = {"kty": "EC", "kid": "broken", "crv": "P-256", "x": "AAAA", "y": "AAAA"}
    path = tmp_path / "bad.json"
    write_jwks(path, [private, short, broken, jwk(EC_KEY, "ec1")])
    keys = make(path).keys
    with caplog.at_level(logging.DEBUG, logger="lockgate.auth.jwt"):
        assert await keys.refresh() is True
    assert keys.kids == ("ec1",)
    logged = caplog.text + " ".join(str(vars(r)) for r in caplog.records)
    assert private["d"] not in logged and private["n"] not in logged and short["n"] not in logged


async def test_a_failed_reload_keeps_the_last_good_keys(jwks_path, caplog):
    verifier = make(jwks_path)
    token = sign()
    assert await verifier.verify(token)
    for bad in ["{not json", json.dumps({"keys": []}), json.dumps({"nope": 1}),
                json.dumps({"keys": [jwk(RSA_KEY, "x", use="enc")]})]:
        jwks_path.write_text(bad)
        with caplog.at_level(logging.WARNING, logger="lockgate.auth.jwt"):
            assert await verifier.keys.refresh() is False
        assert verifier.keys.last_error
        assert await verifier.verify(token)
    jwks_path.unlink()
    assert await verifier.keys.refresh() is False
    assert await verifier.verify(token)
    assert "JWKS load failed" in caplog.text


async def test_an_oversized_jwks_file_is_refused(jwks_path):
    keys = make(jwks_path).keys
    jwks_path.write_text(json.dumps({"keys": DEFAULT_KEYS, "pad": "x" * MAX_JWKS_BYTES}))
    assert await keys.refresh() is False
    assert "1 MiB" in keys.last_error


async def test_unknown_kid_reloads_at_most_once_per_window(jwks_path):
    now = [1000.0]
    s = JwtSettings(issuer=ISSUER, audience=AUDIENCE, jwks_file=jwks_path)
    keys = JwksKeys(s, clock=lambda: now[0])
    verifier = JwtVerifier(s, keys)
    loads = []
    real_read = keys._read

    async def counting_read():
        loads.append(1)
        return await real_read()

    keys._read = counting_read
    assert await verifier.verify(sign())  # first use loads the keys (a miss)
    assert len(loads) == 1
    write_jwks(jwks_path, [*DEFAULT_KEYS, jwk(RSA_KEY_2, "rsa2")])
    now[0] += 10
    rotated = sign(RSA_KEY_2, kid="rsa2")
    assert await refused(verifier, rotated) == "token signing key is unknown"  # within 30 s
    for _ in range(5):
        await refused(verifier, sign(kid="junk"))
    assert len(loads) == 1
    now[0] += 21
    assert await verifier.verify(rotated)
    assert len(loads) == 2


async def test_background_refresh_picks_up_a_new_key(jwks_path):
    verifier = make(jwks_path, refresh_seconds=0.05)
    keys = verifier.keys
    keys.miss_refetch_seconds = 3600  # only the background loop may load
    keys.start()
    try:
        for _ in range(100):
            if keys.loaded_at is not None:
                break
            await asyncio.sleep(0.02)
        write_jwks(jwks_path, [*DEFAULT_KEYS, jwk(RSA_KEY_2, "rsa2")])
        for _ in range(100):
            if "rsa2" in keys.kids:
                break
            await asyncio.sleep(0.02)
        assert await verifier.verify(sign(RSA_KEY_2, kid="rsa2"))
    finally:
        await keys.close()
    assert keys._task is None


# -- settings and errors ------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["HS256", "HS384", "hs512", "none", "None"])
def test_settings_refuse_symmetric_and_unsigned_algorithms(jwks_path, alg):
    with pytest.raises(ValueError, match="only asymmetric algorithms"):
        JwtSettings(issuer=ISSUER, audience=AUDIENCE, jwks_file=jwks_path,
                    algorithms=("RS256", alg))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"algorithms": ("XY256",)}, "unsupported"),
        ({"algorithms": ()}, "at least one"),
        ({"jwks_url": "https://idp.example.com/jwks"}, "exactly one"),
        ({"jwks_file": None}, "exactly one"),
        ({"jwks_file": None, "jwks_url": "ftp://idp.example.com/jwks"}, "http"),
        ({"jwks_file": None, "jwks_url": "https:///jwks"}, "http"),
        ({"jwks_file": None, "jwks_url": "http://[::1/jwks"}, "http"),
        ({"issuer": ""}, "issuer"),
        ({"audience": ""}, "audience"),
        ({"leeway_seconds": -1}, "leeway"),
        ({"refresh_seconds": 0}, "refresh_seconds"),
    ],
)
def test_settings_validation(jwks_path, kwargs, match):
    base = {"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": jwks_path}
    with pytest.raises(ValueError, match=match):
        JwtSettings(**{**base, **kwargs})


def test_settings_normalise_lists_and_paths(jwks_path):
    s = JwtSettings(issuer=ISSUER, audience=AUDIENCE, jwks_file=str(jwks_path),
                    algorithms=["ES256"])
    assert s.algorithms == ("ES256",) and s.jwks_file == jwks_path
    assert JwtSettings(issuer=ISSUER, audience=AUDIENCE, jwks_url="http://127.0.0.1:1/j")


def test_invalid_token_is_a_401():
    exc = InvalidToken("token expired")
    assert isinstance(exc, errors.Unauthenticated)
    assert errors.status_of(exc).http == 401
    assert exc.code == "invalid_token"


def test_every_pyjwt_token_error_has_a_specific_reason():
    generic = "token is invalid"
    for value in vars(jwt_errors).values():
        if (isinstance(value, type) and issubclass(value, jwt_errors.InvalidTokenError)
                and value is not jwt_errors.InvalidTokenError):
            exc = value("claim") if value is jwt_errors.MissingRequiredClaimError else value()
            assert reason_for(exc) != generic, value
