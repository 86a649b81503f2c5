"""Redaction of logged bodies (lockgate/redact.py) and the gateway config's
`call_log` section (services/router/call_bodies.py)."""

from __future__ import annotations

import time

import pytest

from lockgate.redact import (
    TIMED_OUT,
    TRUNCATED,
    InvalidPattern,
    Redactor,
    compile_pii,
    luhn_valid,
    redact_query,
    redact_secrets,
)
from services.router.call_bodies import CallLogConfig
from services.router.config import ConfigError, load_gateway_config

SECRETS = {
    "openai_key": "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
    "anthropic_key": "sk-ant-api03-Ab3dEf6hIj9kLm2nOp5qRs8tUv1w",
    "lockgate_key": "lg_Ab3dEf6h_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
    "jwt": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c3JfMSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
    "aws_access_key": "AKIAIOSFODNN7EXAMPLE",
    "github_token": "ghp_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb3d",
    "google_api_key": "AIzaSyAb3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z0",
    "slack_token": "xoxb-1234567890-abcdefghij",
    "stripe_key": "sk_live_Ab3dEf6hIj9kLm2nOp5q",
}


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_every_secret_kind_is_redacted_inside_json(kind):
    secret = SECRETS[kind]
    text = f'{{"messages": [{{"content": "use {secret} please"}}]}}'
    out = redact_secrets(text)
    assert secret not in out
    assert f"[REDACTED:{kind}]" in out
    assert out.startswith('{"messages": [{"content": "use ') and out.endswith(' please"}]}')


def test_bearer_tokens_keep_the_scheme_only():
    out = redact_secrets("Authorization: Bearer abc.DEF-123_xyz~token and bearer   zzzzzzzzzz")
    assert out == ("Authorization: Bearer [REDACTED:bearer_token] and bearer   "
                   "[REDACTED:bearer_token]")


def test_private_key_blocks_whole_or_cut_off():
    block = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----"
    assert redact_secrets(f"key: {block} end") == "key: [REDACTED:private_key] end"
    # A body cut before the END line loses everything from BEGIN on.
    assert redact_secrets("x -----BEGIN RSA PRIVATE KEY-----\\nMIIEow") == \
        "x [REDACTED:private_key]"


def test_aws_secret_keys_and_url_passwords():
    out = redact_secrets('{"aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}')
    assert "wJalr" not in out and "[REDACTED:aws_secret_key]" in out
    assert redact_secrets("postgres://app:s3cr3t@db:5432/x") == \
        "postgres://app:[REDACTED:url_password]@db:5432/x"


def test_ordinary_text_is_left_alone():
    text = ('{"model": "demo", "created": 1700000000123, "id": "chatcmpl-123", '
            '"skeleton": "sk-short", "task": "ask-questions"}')
    assert Redactor().redact(text) == text


def test_default_pii_patterns_email_and_luhn_checked_cards():
    out = Redactor().redact("mail ada@example.co.uk, card 4111 1111 1111 1111, "
                            "card 5500-0000-0000-0004, not a card 4111 1111 1111 1112")
    assert out == ("mail [REDACTED:email], card [REDACTED:card_number], "
                   "card [REDACTED:card_number], not a card 4111 1111 1111 1112")
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")


def test_configured_patterns_replace_the_defaults():
    redactor = CallLogConfig.model_validate(
        {"redact": [{"name": "ssn", "pattern": r"\b\d{3}-\d{2}-\d{4}\b"}]}).redactor()
    out = redactor.redact("ssn 123-45-6789 mail ada@example.com key sk-Ab3dEf6hIj9kLm2nOp5q")
    # Secrets are always redacted; the e-mail default was replaced.
    assert out == "ssn [REDACTED:ssn] mail ada@example.com key [REDACTED:openai_key]"


@pytest.mark.parametrize(("entry", "problem"), [
    ({"name": "bad", "pattern": "(unclosed"}, "not a valid regular expression"),
    ({"name": "empty", "pattern": "a*"}, "matches the empty string"),
    ({"name": "Bad Name", "pattern": "x"}, "lower-case letters"),
    ({"name": "long", "pattern": "x" * 1001}, "longer than 1000"),
    ({"name": "blank", "pattern": ""}, "is empty"),
])
def test_invalid_patterns_are_refused_with_the_reason(entry, problem):
    with pytest.raises(InvalidPattern, match=problem):
        compile_pii(entry["name"], entry["pattern"])
    with pytest.raises(ValueError, match=problem):
        CallLogConfig.model_validate({"redact": [entry]})


def test_duplicate_names_and_bounds_are_refused():
    with pytest.raises(InvalidPattern, match="unique"):
        Redactor([compile_pii("a", "x"), compile_pii("a", "y")])
    with pytest.raises(ValueError):
        CallLogConfig.model_validate({"max_body_bytes": 10})
    with pytest.raises(ValueError):
        CallLogConfig.model_validate({"unknown": 1})


def test_an_invalid_pattern_in_the_gateway_config_names_file_and_place(tmp_path):
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "providers: {sim: {type: openai, base_url: 'http://127.0.0.1:1/v1'}}\n"
        "deployments: {d: {provider: sim, model: m}}\n"
        "models: {demo: {deployments: [d]}}\n"
        "call_log: {redact: [{name: broken, pattern: '[a-'}]}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_gateway_config(path)
    assert str(path) in str(err.value) and "call_log" in str(err.value)
    assert "broken" in str(err.value)


def test_a_pattern_that_backtracks_costs_bounded_time_and_fails_closed():
    redactor = Redactor([compile_pii("evil", r"^(a|aa)+$")], time_budget=0.05)
    started = time.monotonic()
    assert redactor.bounded("a" * 5000 + "b", 65536) == TIMED_OUT
    assert time.monotonic() - started < 2


def test_bodies_are_bounded_after_redaction():
    redactor = Redactor()
    out = redactor.bounded("ok " * 2000, 1024)
    assert len(out.encode()) <= 1024 and out.endswith(TRUNCATED)
    # A multi-byte character is never cut in half.
    assert redactor.bounded("é" * 2000, 1024).encode().decode() is not None
    assert redactor.bounded("", 1024) == ""


def test_a_secret_cut_by_the_scan_window_does_not_leak():
    # Only the first 2 * max + 1024 characters are scanned. E-mail addresses shrink a
    # lot when redacted, so the end of the window would land inside the kept bytes:
    # the half of the key left in the window must not be kept unredacted.
    secret = SECRETS["openai_key"]
    window = 2 * 1024 + 1024
    prefix = ""
    while len(prefix) < window - 100:
        prefix += "a" * 80 + "@example.com "
    text = prefix + "y" * (window - 10 - len(prefix) - 1) + " " + secret + " tail"
    assert text.index(secret) == window - 10  # ten characters of it inside the window
    out = Redactor().bounded(text, 1024)
    assert len(out.encode()) <= 1024
    assert "[REDACTED:email]" in out and secret[:10] not in out
    assert out.endswith(TRUNCATED)


def test_query_values_that_look_like_secrets_are_redacted_in_paths():
    assert redact_query("/v1/models?key=abc&limit=5&q=sk-Ab3dEf6hIj9kLm2nOp5qRs&flag") == \
        "/v1/models?key=[REDACTED]&limit=5&q=[REDACTED]&flag"
    assert redact_query("/v1/chat/completions") == "/v1/chat/completions"
    long = redact_query("/x?" + "a=b&" * 1000, max_length=100)
    assert len(long) <= 100
