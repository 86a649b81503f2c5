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

from services.router.call_bodies import CallLogConfig

DEFAULT_CONFIG = Path(__file__).parent / "default_gateway.yaml"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


#: Headers no forward_headers entry may match (credentials, framing, routing).
_NEVER_FORWARDED = (
    "authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key",
    "cookie", "host", "content-length", "content-type", "transfer-encoding", "connection",
    "te", "upgrade", "keep-alive", "x-lockgate-", "x-forwarded-", "x-envoy-",
)


class ConfigError(Exception):
    """The gateway config cannot be used; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ProviderType = Literal["openai", "azure", "anthropic", "gemini", "mistral"]
Strategy = Literal["priority", "weighted", "least-latency", "lowest-cost", "least-busy"]


class TimeoutsConfig(_Strict):
    """Bounds on one provider attempt (seconds)."""

    #: TCP (and TLS) connect.
    connect: float = Field(default=5.0, gt=0, le=120)
    #: Until the response headers and, for a stream, its first event.
    first_token: float = Field(default=60.0, gt=0, le=3600)
    #: The whole attempt, including reading a stream to its end.
    total: float = Field(default=600.0, gt=0, le=86400)


class ProviderConfig(_Strict):
    #: Wire protocol. `openai` works with any OpenAI-compatible server (OpenAI,
    #: vLLM, Ollama, Groq, Together, DeepSeek, OpenRouter, the simulator…);
    #: `azure` is Azure OpenAI (deployment URLs, `api-version`, `api-key`);
    #: `anthropic` the Messages API; `gemini` Google's generateContent API;
    #: `mistral` Mistral's chat API.
    type: ProviderType
    #: Admin-configured only: a request can never choose an upstream URL.
    base_url: str
    #: Name of the environment variable that holds the API key (never the key itself).
    api_key_env: str | None = None
    #: Azure: the `api-version` query parameter; Anthropic: the
    #: `anthropic-version` header. Empty: the adapter's documented default.
    api_version: str = ""
    timeouts: TimeoutsConfig = TimeoutsConfig()
    #: Bound on a non-streamed response body, or one stream event.
    max_response_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=1 << 30)
    #: Client request headers passed on to this provider: exact names, or a
    #: prefix ending in `*` (e.g. `x-sim-*` for the simulator's fault knobs,
    #: `openai-organization`). Credentials, hop-by-hop and Lockgate headers
    #: can never be forwarded.
    forward_headers: list[str] = Field(default_factory=list, max_length=32)

    @field_validator("forward_headers")
    @classmethod
    def _safe_headers(cls, names: list[str]) -> list[str]:
        out = []
        for name in names:
            lowered = name.lower()
            stem = lowered.rstrip("*")
            if not re.match(r"^[a-z0-9-]+\*?$", lowered) or not stem:
                raise ValueError(f"{name!r} is not a header name or prefix")
            # Refused: a name or prefix that covers a refused header, or any
            # header of a refused family (the entries ending in "-").
            if any(
                f.startswith(stem) or (f.endswith("-") and stem.startswith(f))
                for f in _NEVER_FORWARDED
            ):
                raise ValueError(f"{name!r} would forward credentials or gateway headers")
            out.append(lowered)
        return out

    @model_validator(mode="after")
    def _api_version_where_used(self) -> ProviderConfig:
        if self.api_version and self.type not in ("azure", "anthropic"):
            raise ValueError(
                f"api_version is used by azure and anthropic providers only, not {self.type}"
            )
        return self

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


class DeploymentLimits(_Strict):
    """Stay under the provider's own limits: a deployment at a limit is
    skipped (the next one is tried) instead of being sent a call it would
    answer with 429. Per router process; 0: unbounded."""

    #: Calls in flight to this deployment at once.
    max_in_flight: int = Field(default=0, ge=0)
    #: Calls started per minute (a token bucket: bursts up to the full minute's
    #: allowance, refilled evenly).
    requests_per_minute: int = Field(default=0, ge=0)


class PriceConfig(_Strict):
    """USD per million tokens; used by the lowest-cost strategy."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)


class DeploymentConfig(_Strict):
    provider: str
    #: The model name the provider knows (Azure: the deployment name).
    model: str = Field(min_length=1)
    #: Relative share of traffic under the weighted strategy.
    weight: float = Field(default=1.0, ge=0)
    #: Lower is preferred under the priority strategy (ties keep list order).
    priority: int = 0
    #: Free-form location label (e.g. `eu-west-1`), visible to routing policy.
    region: str = ""
    #: Free-form labels visible to routing policy (e.g. {residency: eu}).
    labels: dict[str, str] = Field(default_factory=dict)
    #: Overrides the provider's timeouts for this deployment.
    timeouts: TimeoutsConfig | None = None
    limits: DeploymentLimits = DeploymentLimits()
    #: Overrides the shipped price book for this deployment.
    price: PriceConfig | None = None


class RetryConfig(_Strict):
    #: Attempts per deployment (1 = no retry) for retryable failures (429,
    #: 5xx, 529, timeouts, connection resets) before failing over.
    attempts: int = Field(default=2, ge=1, le=10)
    #: Jittered exponential backoff between attempts (seconds).
    initial_backoff: float = Field(default=0.2, ge=0, le=60)
    max_backoff: float = Field(default=5.0, ge=0, le=300)
    #: A Retry-After longer than this is not waited for: fail over instead.
    max_retry_after: float = Field(default=10.0, ge=0, le=600)


class AliasCacheConfig(_Strict):
    #: Seconds a response is served from the cache; 0 disables caching.
    ttl_seconds: int = Field(default=0, ge=0, le=30 * 86400)


class AliasConfig(_Strict):
    #: Deployments serving the alias; the strategy orders them per request and
    #: the next one is tried when one fails with a retryable error before any
    #: byte reached the client.
    deployments: list[str] = Field(min_length=1)
    description: str = ""
    #: `chat` aliases serve /v1/chat/completions and /v1/messages;
    #: `embeddings` aliases serve /v1/embeddings.
    kind: Literal["chat", "embeddings"] = "chat"
    strategy: Strategy = "priority"
    retry: RetryConfig = RetryConfig()
    cache: AliasCacheConfig = AliasCacheConfig()
    #: Bound on the whole call across retries and failover (seconds); the
    #: caller's gRPC deadline bounds it too.
    timeout_seconds: float = Field(default=600.0, gt=0, le=86400)


class CircuitBreakerConfig(_Strict):
    """Per deployment: opens on consecutive failures or on the error rate of a
    sliding window, lets probes through after `open_seconds` (half-open), and
    closes when a probe succeeds."""

    consecutive_failures: int = Field(default=5, ge=1)
    error_rate: float = Field(default=0.5, gt=0, le=1)
    window_seconds: float = Field(default=30.0, gt=0)
    #: The error rate counts only once the window holds this many calls.
    min_calls: int = Field(default=20, ge=1)
    open_seconds: float = Field(default=30.0, gt=0)
    half_open_probes: int = Field(default=1, ge=1)


class ResponseCacheConfig(_Strict):
    backend: Literal["memory", "redis"] = "memory"
    #: Memory backend: bound on cached response bytes (LRU eviction).
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    #: Redis backend: e.g. redis://127.0.0.1:6379/0.
    redis_url: str = ""
    #: Responses larger than this are not cached.
    max_entry_bytes: int = Field(default=1024 * 1024, ge=0)


class RoutingSettings(_Strict):
    circuit_breaker: CircuitBreakerConfig = CircuitBreakerConfig()
    cache: ResponseCacheConfig = ResponseCacheConfig()
    #: Smoothing of the least-latency strategy's moving average (0..1].
    latency_ewma_alpha: float = Field(default=0.3, gt=0, le=1)


class GatewayConfig(_Strict):
    providers: dict[str, ProviderConfig]
    deployments: dict[str, DeploymentConfig]
    models: dict[str, AliasConfig]
    routing: RoutingSettings = RoutingSettings()
    #: Bodies of APIs that opted in to body logging: PII patterns and size bound.
    call_log: CallLogConfig = CallLogConfig()

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
            if len(set(cfg.deployments)) != len(cfg.deployments):
                raise ValueError(f"models.{alias}.deployments: a deployment is listed twice")
        cache = self.routing.cache
        if cache.backend == "redis" and not cache.redis_url.startswith(("redis://", "rediss://")):
            raise ValueError("routing.cache.redis_url: a redis:// URL is required with backend redis")
        return self

    def timeouts_of(self, deployment: str) -> TimeoutsConfig:
        dep = self.deployments[deployment]
        return dep.timeouts or self.providers[dep.provider].timeouts


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
