"""Settings shared by every service. Each service subclasses ServiceSettings with
its own env prefix (LOCKGATE_<SVC>_…), loads it once in __main__ and passes it down.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    grpc_port: int = 0
    #: Prometheus /metrics port; 0 picks a free port, -1 disables it.
    metrics_port: int = -1
    data_dir: Path = Field(default=Path(".lockgate"))
    #: SQLAlchemy URL; default is a SQLite file in data_dir. postgresql:// URLs
    #: are used through asyncpg.
    database_url: str | None = None
    log_level: str = "info"
    #: Seconds in-flight calls get to finish on SIGTERM.
    grace_seconds: float = 5.0

    def db_url(self, name: str) -> str:
        if self.database_url:
            return normalize_db_url(self.database_url)
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{name}.db').resolve()}"


class PolicySettings(ServiceSettings):
    """Where a service's policy decisions come from (auth, router, registry)."""

    #: Folder of .rego policies and data.json files; default: the shipped policies/.
    policy_dir: Path | None = None
    #: Seconds between checks of the policy folder (or the OPA server's revision)
    #: for changes (0: never).
    policy_reload_interval: float = 1.0
    #: Write every decision to <data dir>/decisions-<service>.jsonl (OPA format).
    decision_log: bool = True
    #: Remote mode: an OPA server (http(s)://host:port) evaluates the same policies
    #: instead of the embedded engine. Admin configuration only.
    opa_url: str = ""
    #: Seconds one remote decision may take (then the call fails closed).
    opa_timeout_seconds: float = 0.5
    #: Bearer token for an OPA server run with --authentication=token.
    opa_token: SecretStr | None = None


def normalize_db_url(url: str) -> str:
    """Accept plain postgresql:// and sqlite:// URLs and pick the async driver."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url
