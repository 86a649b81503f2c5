"""Auth process wiring: settings -> migrations -> bootstrap -> gRPC server."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from envoy.service.auth.v3 import external_auth_pb2 as authz
from envoy.service.auth.v3 import external_auth_pb2_grpc as authz_grpc
from pydantic_settings import SettingsConfigDict

from lockgate.auth.v1 import auth_service_pb2 as pb
from lockgate.auth.v1 import auth_service_pb2_grpc as pb_grpc
from lockgate.db import open_database
from lockgate.decision_log import DecisionLog
from lockgate.grpc_server import GrpcService
from lockgate.live_policy import LivePolicy
from lockgate.settings import ServiceSettings
from services.auth.check import Checker
from services.auth.principals import PrincipalCache
from services.auth.secrets import KeyHasher, load_or_create_pepper
from services.auth.service import AuthService
from services.auth.servicer import AuthorizationServicer, AuthServicer

log = logging.getLogger("lockgate.auth")
MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAMES = [
    pb.DESCRIPTOR.services_by_name["AuthService"].full_name,
    authz.DESCRIPTOR.services_by_name["Authorization"].full_name,
]


class AuthSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LOCKGATE_AUTH_", extra="ignore", frozen=True)

    #: Seconds a resolved key is cached by this replica.
    key_cache_ttl_seconds: float = 5.0
    #: Shared secret for key hashing (set it when replicas share a database);
    #: by default a random pepper is kept in <data_dir>/auth.pepper.
    key_pepper: str | None = None
    #: Folder of .rego policies and data.json files; default: the shipped policies/.
    policy_dir: Path | None = None
    #: Seconds between checks of the policy folder for changes (0: never).
    policy_reload_interval: float = 1.0
    #: Write every access decision to <data dir>/decisions-auth.jsonl (OPA format).
    decision_log: bool = True
    #: Create tenant `default` and an admin key (written to <data_dir>/admin.key) on first start.
    bootstrap_admin: bool = True


def write_admin_key(path: Path, secret: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")


async def build(settings: AuthSettings) -> tuple[GrpcService, AuthService, object]:
    url = settings.db_url("auth")
    engine, sessions = await open_database(url, MIGRATIONS, "alembic_version_auth")
    pepper = load_or_create_pepper(settings.data_dir / "auth.pepper", settings.key_pepper)
    service = AuthService(
        sessions, KeyHasher(pepper), PrincipalCache(settings.key_cache_ttl_seconds)
    )
    if settings.bootstrap_admin:
        secret = await service.bootstrap()
        if secret is not None:
            write_admin_key(settings.data_dir / "admin.key", secret)
            log.info("created tenant default and an admin key", extra={"file": "admin.key"})
    policy = LivePolicy(settings.policy_dir, interval=settings.policy_reload_interval)
    decisions = (
        DecisionLog(settings.data_dir / "decisions-auth.jsonl", "auth")
        if settings.decision_log else None
    )
    checker = Checker(service, policy, decisions)

    def register(server) -> list[str]:
        pb_grpc.add_AuthServiceServicer_to_server(AuthServicer(service), server)
        authz_grpc.add_AuthorizationServicer_to_server(AuthorizationServicer(checker), server)
        return SERVICE_NAMES

    server = GrpcService("auth", settings, register)
    server.background.append(policy)  # hot reload of the policies
    if decisions is not None:
        server.background.append(decisions)
    return server, service, engine
