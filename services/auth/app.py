"""Auth process wiring: settings -> migrations -> bootstrap -> gRPC server."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from envoy.service.auth.v3 import external_auth_pb2 as authz
from envoy.service.auth.v3 import external_auth_pb2_grpc as authz_grpc
from pydantic_settings import SettingsConfigDict
from sqlalchemy.ext.asyncio import AsyncEngine

from lockgate.auth.v1 import auth_service_pb2 as pb
from lockgate.auth.v1 import auth_service_pb2_grpc as pb_grpc
from lockgate.db import open_database
from lockgate.decision_log import DecisionLog
from lockgate.governance_view import GovernanceView
from lockgate.grpc_server import GrpcService
from lockgate.policy_source import build_policy
from lockgate.settings import PolicySettings
from services.auth.admin_policy import AdminAuthorizer
from services.auth.changes import ChangeFeed, LastUsed
from services.auth.check import Checker
from services.auth.check_http import check_server
from services.auth.jwt_tokens import JwksKeys, JwtSettings, JwtVerifier
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


class AuthSettings(PolicySettings):
    model_config = SettingsConfigDict(env_prefix="LOCKGATE_AUTH_", extra="ignore", frozen=True)

    #: Seconds a resolved key is cached by this replica (a backstop: changes reach
    #: every replica through the change feed within change_poll_seconds).
    key_cache_ttl_seconds: float = 60.0
    #: Seconds between polls of the change feed (revocations, rotations, owner changes).
    change_poll_seconds: float = 0.25
    #: Seconds between writes of keys' last-used times.
    last_used_flush_seconds: float = 5.0
    #: Shared secret for key hashing (set it when replicas share a database);
    #: by default a random pepper is kept in <data_dir>/auth.pepper.
    key_pepper: str | None = None
    #: Create tenant `default` and an admin key (written to <data_dir>/admin.key) on first start.
    bootstrap_admin: bool = True
    #: Users' JWTs (Bearer) are accepted when an issuer is set: tokens from this
    #: issuer, for this audience, signed by a key of the JWKS file or URL.
    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwt_jwks_file: Path | None = None
    jwt_jwks_url: str | None = None
    #: The claim holding the user's e-mail (matched against users' emails).
    jwt_email_claim: str = "email"
    #: Seconds between reloads of the JWKS.
    jwt_jwks_refresh_seconds: float = 300.0
    #: Port of the HTTP access check Envoy's ext_authz filter calls (0: any free
    #: port, -1: none, only the gRPC Authorization/Check).
    check_port: int = -1
    #: Largest request body the HTTP access check reads (Envoy sends at most its
    #: with_request_body limit; `lockgate up` sets that to the request limit + 4 KiB).
    check_max_body_bytes: int = 8 * 1024 * 1024 + 4096
    #: The registry, whose watch stream says which aliases are governed API versions
    #: and which teams are subscribed (empty: no governance at the edge).
    registry_address: str = ""

    def jwt(self) -> JwtSettings | None:
        """The JWT verification settings, or None when JWTs are not accepted."""
        if not self.jwt_issuer:
            return None
        return JwtSettings(
            issuer=self.jwt_issuer, audience=self.jwt_audience, jwks_file=self.jwt_jwks_file,
            jwks_url=self.jwt_jwks_url, email_claim=self.jwt_email_claim,
            refresh_seconds=self.jwt_jwks_refresh_seconds,
        )


def write_admin_key(path: Path, secret: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")


@dataclass(frozen=True)
class AuthParts:
    server: GrpcService
    service: AuthService
    engine: AsyncEngine
    #: The access check, which the router runs itself when hosted with auth.
    checker: Checker


async def build(settings: AuthSettings) -> tuple[GrpcService, AuthService, AsyncEngine]:
    parts = await assemble(settings)
    return parts.server, parts.service, parts.engine


async def assemble(settings: AuthSettings) -> AuthParts:
    """The (unstarted) service and the parts of it others in its process may use."""
    url = settings.db_url("auth")
    engine, sessions = await open_database(url, MIGRATIONS, "alembic_version_auth")
    pepper = load_or_create_pepper(settings.data_dir / "auth.pepper", settings.key_pepper)
    policy = build_policy(settings)
    decisions = (
        DecisionLog(settings.data_dir / "decisions-auth.jsonl", "auth")
        if settings.decision_log else None
    )
    cache = PrincipalCache(settings.key_cache_ttl_seconds)
    service = AuthService(
        sessions, KeyHasher(pepper), cache, authorizer=AdminAuthorizer(policy, decisions)
    )
    if settings.bootstrap_admin:
        secret = await service.bootstrap()
        if secret is not None:
            write_admin_key(settings.data_dir / "admin.key", secret)
            log.info("created tenant default and an admin key", extra={"file": "admin.key"})
    last_used = LastUsed(sessions, settings.last_used_flush_seconds)
    jwt_settings = settings.jwt()
    jwks = JwksKeys(jwt_settings) if jwt_settings is not None else None
    verifier = JwtVerifier(jwt_settings, jwks) if jwt_settings and jwks else None
    governance = (GovernanceView(settings.registry_address, "auth")
                  if settings.registry_address else None)
    checker = Checker(service, policy, decisions, last_used, verifier, governance)

    def register(server) -> list[str]:
        pb_grpc.add_AuthServiceServicer_to_server(AuthServicer(service), server)
        authz_grpc.add_AuthorizationServicer_to_server(AuthorizationServicer(checker), server)
        return SERVICE_NAMES

    server = GrpcService("auth", settings, register)
    if settings.check_port >= 0:
        http_check = check_server(checker, settings.host, settings.check_port,
                                  settings.check_max_body_bytes)
        await http_check.listen()
        server.background.append(http_check)
    server.background.append(policy)  # hot reload of the policies
    server.background.append(ChangeFeed(sessions, cache, settings.change_poll_seconds))
    server.background.append(last_used)
    if governance is not None:
        server.background.append(governance)  # follows the registry's watch stream
    if jwks is not None:
        server.background.append(jwks)  # keeps the identity provider's keys fresh
    if decisions is not None:
        server.background.append(decisions)
    return AuthParts(server, service, engine, checker)
