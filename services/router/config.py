"""Gateway config: providers, deployments and model aliases, from YAML.

Validated strictly (unknown keys are errors); every error names the file, the
path inside it and the reason. `${VAR}` and `${VAR:-default}` in string values
are replaced from the environment, so a config can be shared across machines.
Secrets are never in the file: a provider names the env var holding its key.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_CONFIG = Path(__file__).parent / "default_gateway.yaml"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """The gateway config cannot be used; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderConfig(_Strict):
    #: Wire protocol. `openai` works with any OpenAI-compatible server
    #: (OpenAI, vLLM, Ollama, Groq, Together, the Lockgate simulator…).
    type: Literal["openai"]
    base_url: str
    #: Name of the environment variable that holds the API key (never the key itself).
    api_key_env: str | None = None
    #: Seconds to wait for the provider's response headers / next stream chunk.
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=120)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


class DeploymentConfig(_Strict):
    provider: str
    #: The model name the provider knows.
    model: str = Field(min_length=1)


class AliasConfig(_Strict):
    #: Deployments tried in order: the next one is used when one fails with a
    #: retryable error (unreachable, 429, 5xx, timeout) before any byte was sent.
    deployments: list[str] = Field(min_length=1)
    description: str = ""


class GatewayConfig(_Strict):
    providers: dict[str, ProviderConfig]
    deployments: dict[str, DeploymentConfig]
    models: dict[str, AliasConfig]

    @model_validator(mode="after")
    def _references(self) -> GatewayConfig:
        for section in ("providers", "deployments", "models"):
            for name in getattr(self, section):
                if not re.match(_NAME, name):
                    raise ValueError(f"{section}.{name}: invalid name")
        for name, dep in self.deployments.items():
            if dep.provider not in self.providers:
                raise ValueError(f"deployments.{name}.provider: unknown provider {dep.provider!r}")
        for alias, cfg in self.models.items():
            for dep in cfg.deployments:
                if dep not in self.deployments:
                    raise ValueError(f"models.{alias}.deployments: unknown deployment {dep!r}")
        return self


def _expand(value: object) -> object:
    if isinstance(value, str):
        return _VAR.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    return value


def load_gateway_config(path: Path | None = None) -> GatewayConfig:
    """Load and validate; raises ConfigError naming file, path and reason."""
    path = path or DEFAULT_CONFIG
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    try:
        return GatewayConfig.model_validate(_expand(raw))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            problems.append(f"{path}: {where}: {err['msg']}")
        raise ConfigError("\n".join(problems)) from None
