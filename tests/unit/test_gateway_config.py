"""Gateway config: validation errors name file, path and reason; env expansion."""

from __future__ import annotations

import pytest

from services.router.config import DEFAULT_CONFIG, ConfigError, load_gateway_config

VALID = """
providers:
  p: {type: openai, base_url: "${UPSTREAM_URL:-http://127.0.0.1:1/v1}", api_key_env: MY_KEY}
deployments:
  d: {provider: p, model: m}
models:
  demo: {deployments: [d]}
"""


def write(tmp_path, text: str):
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    return path


def test_shipped_default_routes_demo_to_the_simulator(monkeypatch):
    monkeypatch.setenv("LOCKGATE_SIM_URL", "http://127.0.0.1:5555/v1")
    config = load_gateway_config(DEFAULT_CONFIG)
    deployment = config.deployments[config.models["demo"].deployments[0]]
    assert config.providers[deployment.provider].base_url == "http://127.0.0.1:5555/v1"


def test_env_expansion_with_default(tmp_path, monkeypatch):
    monkeypatch.delenv("UPSTREAM_URL", raising=False)
    assert load_gateway_config(write(tmp_path, VALID)).providers["p"].base_url == (
        "http://127.0.0.1:1/v1"
    )
    monkeypatch.setenv("UPSTREAM_URL", "https://llm.internal/v1/")
    assert load_gateway_config(write(tmp_path, VALID)).providers["p"].base_url == (
        "https://llm.internal/v1"
    )


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (VALID.replace("model: m}", "model: m, colour: red}"), "deployments.d.colour"),
        (VALID.replace("type: openai", "type: carrier-pigeon"), "providers.p.type"),
        (VALID.replace("[d]", "[missing]"), "unknown deployment 'missing'"),
        (VALID.replace("{provider: p", "{provider: q"), "unknown provider 'q'"),
        (VALID.replace('"${UPSTREAM_URL:-http://127.0.0.1:1/v1}"', "ftp://x"),
         "providers.p.base_url"),
        ("providers: [\n", "invalid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
    ],
)
def test_errors_name_file_path_and_reason(tmp_path, text, where):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_gateway_config(path)
    assert str(path) in str(err.value)
    assert where in str(err.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_gateway_config(tmp_path / "nope.yaml")
    assert "cannot read" in str(err.value)


@pytest.mark.parametrize("header", ["authorization", "x-api-key", "api-key", "x-goog-api-key",
                                    "cookie", "x-forwarded-for", "x-envoy-original-path",
                                    "x-lockgate-tenant-id", "x-lockgate-*", "x-*", "a*"])
def test_forward_headers_never_pass_credentials_or_gateway_headers(tmp_path, header):
    text = VALID.replace("api_key_env: MY_KEY}", f"api_key_env: MY_KEY, forward_headers: ['{header}']}}")
    with pytest.raises(ConfigError, match="forward_headers"):
        load_gateway_config(write(tmp_path, text))


def test_forward_headers_allow_plain_names_and_prefixes(tmp_path):
    text = VALID.replace(
        "api_key_env: MY_KEY}", "api_key_env: MY_KEY, forward_headers: [x-sim-*, OpenAI-Organization]}")
    assert load_gateway_config(write(tmp_path, text)).providers["p"].forward_headers == [
        "x-sim-*", "openai-organization"]


def test_api_version_only_where_a_provider_uses_it(tmp_path):
    with pytest.raises(ConfigError, match="api_version"):
        load_gateway_config(write(tmp_path, VALID.replace("type: openai", "type: openai, api_version: v2")))
    text = VALID.replace("type: openai", "type: azure, api_version: '2024-10-21'")
    assert load_gateway_config(write(tmp_path, text)).providers["p"].api_version == "2024-10-21"
