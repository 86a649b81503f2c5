"""Roles, scopes and the names objects may have: the vocabulary every auth use
case validates against.

Roles are ranked: a role's rights include those of every role ranked below it
(a tenant admin can do what a developer can, on more objects). The ranks are
duplicated in policies/lockgate/admin/data.json (`role_rank`) for the policy;
a unit test keeps the two equal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from lockgate.errors import InvalidRequest

ROLE_RANK = {"viewer": 1, "developer": 2, "team_admin": 3, "tenant_admin": 4, "platform_admin": 5}
ROLES = tuple(ROLE_RANK)
PLATFORM_ADMIN = "platform_admin"
#: Roles that apply tenant-wide, so their holders may own keys outside any team.
TENANT_WIDE = frozenset({"tenant_admin", "platform_admin"})
#: Roles a user holds in one team (tenant-wide roles are set on the user).
TEAM_ROLES = ("team_admin", "developer", "viewer")
#: The APIs a key may be scoped to; see policies/lockgate/access/data.json (`service_scopes`).
SCOPES = ("inference", "admin", "registry", "usage")

NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
EMAIL = re.compile(r"^[^@\s\x00-\x1f]{1,64}@[A-Za-z0-9.-]{1,189}\.[A-Za-z]{2,63}$")
#: Model aliases a key may be scoped to: the gateway config's alias names (no
#: commas, so the scope travels as one x-lockgate-models header).
MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
MAX_DISPLAY_NAME = 256
MAX_KEY_NAME = 128
MAX_MODELS = 100


def clip(value: str, width: int = 64) -> str:
    """A caller-supplied value for an error message, cut short: messages travel in
    gRPC trailers, which clients refuse beyond a few KB."""
    return value if len(value) <= width else value[: width - 3] + "..."


def clipped(values: list[str], most: int = 5) -> list[str]:
    return [clip(v) for v in values[:most]] + (["..."] if len(values) > most else [])


def rank(roles: Iterable[str]) -> int:
    """The highest rank among roles (0 for none)."""
    return max((ROLE_RANK.get(r, 0) for r in roles), default=0)


def within(roles: Iterable[str], held: Iterable[str]) -> list[str]:
    """The roles that `held` covers (ranked at or below the highest held role)."""
    ceiling = rank(held)
    return [r for r in roles if ROLE_RANK.get(r, 99) <= ceiling]


def check_roles(roles: list[str], param: str = "roles", allowed: Iterable[str] = ROLES) -> list[str]:
    allowed = tuple(allowed)
    unknown = sorted(set(roles) - set(allowed))
    if unknown:
        raise InvalidRequest(f"unknown roles {clipped(unknown)}; valid: {list(allowed)}", param=param)
    return sorted(set(roles), key=ROLE_RANK.__getitem__, reverse=True)


def check_scopes(scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise InvalidRequest(f"unknown scopes {clipped(unknown)}; valid: {list(SCOPES)}", param="scopes")
    return sorted(set(scopes))


def check_models(models: list[str]) -> list[str]:
    if len(models) > MAX_MODELS or not all(MODEL.match(m) for m in models):
        raise InvalidRequest(
            f"models: at most {MAX_MODELS} model aliases (letters, digits and ._:-)",
            param="models",
        )
    return list(dict.fromkeys(models))


def check_name(name: str, what: str, param: str = "name") -> str:
    if not NAME.match(name):
        raise InvalidRequest(
            f"{what} name must start with a letter and hold 1-63 lower-case letters, digits "
            "and dashes", param=param,
        )
    return name


def check_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > 254 or not EMAIL.match(email):
        raise InvalidRequest("email must be a valid e-mail address", param="email")
    return email


def check_display_name(value: str) -> str:
    if len(value) > MAX_DISPLAY_NAME or any(ord(c) < 32 for c in value):
        raise InvalidRequest(
            f"display_name: at most {MAX_DISPLAY_NAME} printable characters", param="display_name"
        )
    return value


def check_key_name(name: str) -> str:
    if not name or len(name) > MAX_KEY_NAME or any(ord(c) < 32 for c in name):
        raise InvalidRequest(f"key name must be 1-{MAX_KEY_NAME} printable characters",
                             param="name")
    return name


def check_status(status: str) -> str:
    if status not in ("active", "disabled"):
        raise InvalidRequest("status must be active or disabled", param="status")
    return status
