"""The policy evaluator a service uses: the embedded engine with hot reload
(default), or an OPA server in remote mode (`opa_url`). Both run the same
policies/ and are background tasks (reload, revision polling)."""

from __future__ import annotations

from lockgate.live_policy import LivePolicy
from lockgate.remote_policy import RemotePolicy
from lockgate.settings import PolicySettings


def build_policy(settings: PolicySettings) -> LivePolicy | RemotePolicy:
    if settings.opa_url:
        token = settings.opa_token.get_secret_value() if settings.opa_token else None
        return RemotePolicy(settings.opa_url, timeout=settings.opa_timeout_seconds, token=token,
                            poll_interval=settings.policy_reload_interval)
    return LivePolicy(settings.policy_dir, interval=settings.policy_reload_interval)
