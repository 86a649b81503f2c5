"""What the admin commands share (whoami, tenants, teams, users, service-accounts,
keys, audit): AuthService calls with the admin key, paging, flag parsing
(durations, expiry times, team memberships), and table / JSON output.

Flag checks raise CliError with exit code 2; a failed call is one line and exit 1
(lockgate.cli.gateway.call).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from lockgate.cli.errors import CliError
from lockgate.cli.options import add_gateway_options

# The auth service's vocabulary (services/auth/roles.py; a unit test keeps them equal).
ROLES = ("viewer", "developer", "team_admin", "tenant_admin", "platform_admin")
TEAM_ROLES = ("team_admin", "developer", "viewer")
SCOPES = ("inference", "admin", "registry", "usage")
#: Statuses of users and service accounts.
STATUSES = ("active", "disabled")
KEY_STATUSES = ("active", "revoked", "expired")
#: lockgate/pagination.py MAX_PAGE_SIZE.
MAX_PAGE_SIZE = 1000
#: services/auth/keys.py MAX_OVERLAP.
MAX_OVERLAP = timedelta(days=30)

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"^(\d+)([smhdw])$")

Invoke = Callable[[str, object], object]


# -- argparse ------------------------------------------------------------------------


def add_common(parser: argparse.ArgumentParser) -> None:
    """--json and the gateway options (--url, --key, --timeout, --data-dir)."""
    parser.add_argument("--json", action="store_true", help="print the response as JSON")
    add_gateway_options(parser)


def add_tenant(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", required=True, help="tenant name or id")


def add_etag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--etag", default="",
                        help="the etag last read: the call fails (ABORTED) if the object "
                        "changed since; default: no check")


def _page_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_PAGE_SIZE}")
    return value


def add_list_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--page-size", type=_page_size, default=0, metavar="N",
                        help=f"results per page (1-{MAX_PAGE_SIZE}; server default 50)")
    parser.add_argument("--page-token", default="", metavar="TOKEN",
                        help="continue from a previous page's next_page_token")
    parser.add_argument("--all", action="store_true",
                        help="follow next_page_token until the last page")


def actions_of(parser: argparse.ArgumentParser, title: str):
    return parser.add_subparsers(dest="action", metavar="ACTION", required=True, title=title)


# -- flag values ---------------------------------------------------------------------


def parse_duration(flag: str, text: str, *, allow_zero: bool = False) -> timedelta:
    """`90s`, `30m`, `1h`, `7d`, `2w` (and `0` when allow_zero) -> a timedelta."""
    value = text.strip()
    if allow_zero and value in ("0", "0s", "0m", "0h", "0d", "0w"):
        return timedelta(0)
    match = _DURATION.match(value)
    if not match:
        raise CliError(f"{flag}: {text!r} is not a duration (e.g. 30m, 1h, 7d, 2w)", 2)
    amount = int(match.group(1))
    if amount == 0:
        raise CliError(f"{flag}: the duration must be positive, not {text!r}", 2)
    try:
        return timedelta(**{_UNITS[match.group(2)]: amount})
    except OverflowError:
        raise CliError(f"{flag}: duration {text!r} is too long", 2) from None


def parse_expiry(flag: str, text: str, now: datetime | None = None) -> datetime:
    """A duration from now (`30d`) or an ISO 8601 time (naive = UTC), in the future."""
    now = now or datetime.now(UTC)
    value = text.strip()
    if _DURATION.match(value):
        try:
            return now + parse_duration(flag, value)
        except OverflowError:
            raise CliError(f"{flag}: duration {text!r} is too long", 2) from None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(
            f"{flag}: {text!r} is neither a duration (30d, 12h) nor an ISO time"
            " (2026-12-31T00:00:00Z)", 2,
        ) from None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if when <= now:
        raise CliError(f"{flag}: {text!r} is in the past", 2)
    return when


def parse_member(text: str) -> tuple[str, list[str]]:
    """`TEAM=ROLE[,ROLE]` -> (team, roles), roles checked against TEAM_ROLES."""
    team, sep, roles_text = text.partition("=")
    team = team.strip()
    roles = [r.strip() for r in roles_text.split(",") if r.strip()]
    if not sep or not team or not roles:
        raise CliError(f"--member: {text!r} is not TEAM=ROLE[,ROLE] (e.g. ml=developer)", 2)
    unknown = [r for r in roles if r not in TEAM_ROLES]
    if unknown:
        raise CliError(f"--member: unknown team role {unknown[0]!r}"
                       f" (use: {', '.join(TEAM_ROLES)})", 2)
    return team, list(dict.fromkeys(roles))


def parse_members(values: Sequence[str]):
    """--member values -> TeamMembership messages (a team at most once)."""
    from lockgate.auth.v1 import auth_service_pb2 as pb

    out, seen = [], set()
    for text in values:
        team, roles = parse_member(text)
        if team in seen:
            raise CliError(f"--member: team {team!r} is given twice", 2)
        seen.add(team)
        out.append(pb.TeamMembership(team=team, roles=roles))
    return out


def check_owner(flag: str, text: str) -> str:
    kind, sep, name = text.partition("/")
    if not sep or not name or kind not in ("users", "service-accounts", "service_accounts"):
        raise CliError(f"{flag}: {text!r} is not users/<email or id> or"
                       " service-accounts/<name or id>", 2)
    return text


def exclusive(first: str, first_value: object, second: str, second_value: object) -> None:
    if first_value and second_value:
        raise CliError(f"choose one of {first} and {second}", 2)


def nothing_to_update(flags: Sequence[str]) -> CliError:
    return CliError(f"nothing to update: give at least one of {', '.join(flags)}", 2)


# -- calls ---------------------------------------------------------------------------


@contextmanager
def auth_service(args: argparse.Namespace) -> Iterator[Invoke]:
    """invoke(method, request) on AuthService, with the admin key, through the gateway."""
    from lockgate.auth.v1 import auth_service_pb2_grpc as pb_grpc
    from lockgate.cli.gateway import bearer, call, channel
    from lockgate.cli.options import admin_key, gateway_url

    metadata = bearer(admin_key(args))
    with channel(gateway_url(args)) as ch:
        stub = pb_grpc.AuthServiceStub(ch)

        def invoke(method: str, request):
            rpc = getattr(stub, method)
            return call(lambda: rpc(request, metadata=metadata, timeout=args.timeout))

        yield invoke


def one_call(args: argparse.Namespace, method: str, request):
    with auth_service(args) as invoke:
        return invoke(method, request)


def list_pages(args: argparse.Namespace, method: str, request, field: str):
    """The response of one List call, or with --all every page merged into one
    response (next_page_token then empty)."""
    if args.page_size:
        request.page_size = args.page_size
    request.page_token = args.page_token
    with auth_service(args) as invoke:
        reply = invoke(method, request)
        merged = reply
        while args.all and reply.next_page_token:
            request.page_token = reply.next_page_token
            reply = invoke(method, request)
            getattr(merged, field).extend(getattr(reply, field))
            merged.next_page_token = reply.next_page_token
    return merged


# -- output --------------------------------------------------------------------------


def to_dict(message) -> dict:
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(message, preserving_proto_field_name=True,
                         always_print_fields_with_no_presence=True)


def print_json(message) -> None:
    print(json.dumps(to_dict(message), indent=2))


def when(message, field: str) -> str:
    """A Timestamp field as `YYYY-MM-DD HH:MM:SS` (UTC), or `-` when unset."""
    if not message.HasField(field):
        return "-"
    return getattr(message, field).ToDatetime().strftime("%Y-%m-%d %H:%M:%S")


def joined(values, empty: str = "-") -> str:
    return ",".join(values) or empty


def format_detail(pairs: Sequence[tuple[str, object]]) -> str:
    width = max(len(label) for label, _ in pairs) + 1
    return "\n".join(f"{label + ':':<{width}} {value}" for label, value in pairs)


def print_list(reply, field: str, headers: Sequence[str], row: Callable, json_out: bool,
               empty: str) -> int:
    from lockgate.cli.table import format_table

    if json_out:
        print_json(reply)
        return 0
    items = getattr(reply, field)
    if items:
        print(format_table(headers, [row(item) for item in items]))
    else:
        print(empty)
    if reply.next_page_token:
        print(f"More results: --page-token {reply.next_page_token} (or --all)", file=sys.stderr)
    return 0


SECRET_WARNING = (
    "This is the only time the secret is shown: store it now (it is not stored anywhere"
    " and cannot be shown again)."
)
