"""The admin commands (whoami, tenants, teams, users, service-accounts, keys, audit):
flags -> request messages (update masks, durations, memberships), table and JSON
output of real proto messages, paging, and bad input (exit 2, one line)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from lockgate import pagination
from lockgate.auth.v1 import auth_service_pb2 as pb
from lockgate.cli import admin, audit, keys, service_accounts, teams, tenants, users, whoami
from lockgate.cli.errors import CliError
from lockgate.cli.main import build_parser, main
from services.auth import keys as auth_keys
from services.auth import roles as vocab

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GATEWAY = ("--key", "lg_test", "--url", "127.0.0.1:1")


def parse(*argv: str):
    return build_parser().parse_args([*argv, *GATEWAY])


class FakeAuth:
    """Stands in for admin.auth_service: records requests, answers from a script."""

    def __init__(self, **replies):
        self.replies = {name: list(r) if isinstance(r, list) else [r]
                        for name, r in replies.items()}
        self.calls: list[tuple[str, object]] = []

    @contextmanager
    def __call__(self, args):
        def invoke(method, request):
            copy = type(request)()
            copy.CopyFrom(request)
            self.calls.append((method, copy))
            answer = self.replies[method].pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

        yield invoke


@pytest.fixture
def fake(monkeypatch):
    def install(**replies) -> FakeAuth:
        auth = FakeAuth(**replies)
        monkeypatch.setattr(admin, "auth_service", auth)
        return auth

    return install


def ts(when: datetime):
    from google.protobuf.timestamp_pb2 import Timestamp

    out = Timestamp()
    out.FromDatetime(when)
    return out


def sample_key(**fields) -> pb.ApiKey:
    base = dict(
        id="key_1", tenant_id="ten_1", name="ci", prefix="lg_ab12cd", roles=["developer"],
        models=["demo"], status="active", team_id="team_1", owner_kind="service_account",
        owner_id="sa_1", scopes=["inference"], etag="r1", create_time=ts(NOW),
        expire_time=ts(NOW + timedelta(days=30)),
    )
    base.update(fields)
    return pb.ApiKey(**base)


# -- the vocabulary matches the auth service ------------------------------------------


def test_vocabulary_matches_the_auth_service():
    assert set(admin.ROLES) == set(vocab.ROLES)
    assert admin.TEAM_ROLES == vocab.TEAM_ROLES
    assert admin.SCOPES == vocab.SCOPES
    assert admin.MAX_PAGE_SIZE == pagination.MAX_PAGE_SIZE
    assert admin.MAX_OVERLAP == auth_keys.MAX_OVERLAP


def test_every_admin_command_is_registered():
    for argv in (["whoami"], ["tenants", "list"], ["teams", "list", "--tenant", "t"],
                 ["users", "list", "--tenant", "t"], ["service-accounts", "list", "--tenant", "t"],
                 ["keys", "list", "--tenant", "t"], ["audit", "list", "--tenant", "t"]):
        assert callable(parse(*argv).handler)


# -- durations, expiry, memberships ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", timedelta(seconds=90)), ("30m", timedelta(minutes=30)), ("1h", timedelta(hours=1)),
     ("7d", timedelta(days=7)), ("2w", timedelta(weeks=2))],
)
def test_parse_duration(text, expected):
    assert admin.parse_duration("--overlap", text) == expected


@pytest.mark.parametrize("text", ["", "1", "h", "-1h", "1.5h", "1x", "0h", "99999999999999d"])
def test_bad_durations_are_exit_2(text):
    with pytest.raises(CliError) as err:
        admin.parse_duration("--overlap", text)
    assert err.value.code == 2 and err.value.args[0].startswith("--overlap: ")


def test_zero_duration_only_when_allowed():
    assert admin.parse_duration("--overlap", "0", allow_zero=True) == timedelta(0)
    assert admin.parse_duration("--overlap", "0h", allow_zero=True) == timedelta(0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30d", NOW + timedelta(days=30)), ("12h", NOW + timedelta(hours=12)),
     ("2026-12-31T00:00:00Z", datetime(2026, 12, 31, tzinfo=UTC)),
     ("2026-12-31T00:00:00", datetime(2026, 12, 31, tzinfo=UTC)),
     ("2026-12-31T02:00:00+02:00", datetime(2026, 12, 31, tzinfo=UTC))],
)
def test_parse_expiry(text, expected):
    assert admin.parse_expiry("--expires", text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("tomorrow", "neither a duration"), ("2020-01-01", "in the past"), ("0d", "positive"),
     ("99999999d", "too long")],
)
def test_bad_expiry_is_exit_2(text, message):
    with pytest.raises(CliError) as err:
        admin.parse_expiry("--expires", text, NOW)
    assert err.value.code == 2 and message in str(err.value)


def test_parse_members():
    members = admin.parse_members(["ml=developer,viewer", " ops = team_admin "])
    assert [(m.team, list(m.roles)) for m in members] == [
        ("ml", ["developer", "viewer"]), ("ops", ["team_admin"])]


@pytest.mark.parametrize(
    ("values", "message"),
    [(["ml"], "is not TEAM=ROLE"), (["=developer"], "is not TEAM=ROLE"), (["ml="], "is not"),
     (["ml=owner"], "unknown team role 'owner'"), (["ml=tenant_admin"], "unknown team role"),
     (["ml=viewer", "ml=developer"], "given twice")],
)
def test_bad_members_are_exit_2(values, message):
    with pytest.raises(CliError) as err:
        admin.parse_members(values)
    assert err.value.code == 2 and message in str(err.value)


# -- requests built from flags ---------------------------------------------------------


def test_keys_create_keeps_the_old_form():
    request = keys.create_request(parse("keys", "create", "--tenant", "default", "--name", "ci",
                                        "--role", "developer", "--model", "demo",
                                        "--model", "claude"))
    assert request == pb.CreateApiKeyRequest(tenant="default", name="ci", roles=["developer"],
                                             models=["demo", "claude"])
    bare = keys.create_request(parse("keys", "create", "--tenant", "t", "--name", "x"))
    assert list(bare.roles) == [] and not bare.HasField("expire_time")


def test_keys_create_with_owner_team_scopes_and_expiry():
    args = parse("keys", "create", "--tenant", "acme", "--name", "bot", "--owner",
                 "service-accounts/bot", "--team", "ml", "--scope", "inference", "--scope",
                 "usage", "--scope", "inference", "--expires", "30d")
    request = keys.create_request(args, NOW)
    assert (request.owner, request.team) == ("service-accounts/bot", "ml")
    assert list(request.scopes) == ["inference", "usage"]
    assert request.expire_time.ToDatetime(tzinfo=UTC) == NOW + timedelta(days=30)


def test_users_update_masks_only_the_given_flags():
    only_name = users.update_request(parse("users", "update", "a@x.io", "--tenant", "t",
                                           "--display-name", "Ann", "--etag", "r3"))
    assert list(only_name.update_mask.paths) == ["display_name"]
    assert (only_name.patch.display_name, only_name.etag, only_name.user) == ("Ann", "r3", "a@x.io")

    rights = users.update_request(parse("users", "update", "a@x.io", "--tenant", "t", "--role",
                                        "viewer", "--member", "ml=developer", "--status",
                                        "disabled"))
    assert list(rights.update_mask.paths) == ["roles", "memberships", "status"]
    assert list(rights.patch.roles) == ["viewer"] and rights.patch.status == "disabled"
    assert rights.patch.memberships[0] == pb.TeamMembership(team="ml", roles=["developer"])

    cleared = users.update_request(parse("users", "update", "a@x.io", "--tenant", "t",
                                         "--clear-roles", "--clear-members"))
    assert list(cleared.update_mask.paths) == ["roles", "memberships"]
    assert not cleared.patch.roles and not cleared.patch.memberships


def test_users_create_request():
    request = users.create_request(parse("users", "create", "--tenant", "t", "--email", "d@x.io",
                                         "--role", "viewer", "--member", "ml=developer,viewer"))
    assert request.email == "d@x.io" and list(request.roles) == ["viewer"]
    assert [(m.team, list(m.roles)) for m in request.memberships] == [
        ("ml", ["developer", "viewer"])]


def test_service_account_requests():
    create = service_accounts.create_request(parse(
        "service-accounts", "create", "--tenant", "t", "--team", "ml", "--name", "bot"))
    assert (create.team, create.name, list(create.roles)) == ("ml", "bot", [])
    update = service_accounts.update_request(parse(
        "service-accounts", "update", "bot", "--tenant", "t", "--role", "viewer", "--status",
        "active"))
    assert list(update.update_mask.paths) == ["roles", "status"]
    assert update.service_account == "bot" and list(update.patch.roles) == ["viewer"]


def test_tenant_and_team_updates():
    tenant = tenants.update_request(parse("tenants", "update", "acme", "--display-name", "A"))
    assert tenant == pb.UpdateTenantRequest(tenant="acme", patch=pb.Tenant(display_name="A"),
                                            update_mask={"paths": ["display_name"]})
    team = teams.update_request(parse("teams", "update", "ml", "--tenant", "acme",
                                      "--display-name", "", "--etag", "r2"))
    assert list(team.update_mask.paths) == ["display_name"] and team.patch.display_name == ""
    assert team.etag == "r2"


def test_keys_update_masks_and_expiry():
    request = keys.update_request(parse("keys", "update", "key_1", "--tenant", "t", "--name",
                                        "new", "--any-model", "--scope", "inference",
                                        "--expires", "7d"), NOW)
    assert list(request.update_mask.paths) == ["name", "models", "scopes", "expire_time"]
    assert not request.patch.models and list(request.patch.scopes) == ["inference"]
    assert request.patch.expire_time.ToDatetime(tzinfo=UTC) == NOW + timedelta(days=7)
    never = keys.update_request(parse("keys", "update", "key_1", "--tenant", "t", "--expires",
                                      "never"))
    assert list(never.update_mask.paths) == ["expire_time"]
    assert not never.patch.HasField("expire_time")
    roles = keys.update_request(parse("keys", "update", "key_1", "--tenant", "t", "--role",
                                      "viewer", "--any-scope"))
    assert list(roles.update_mask.paths) == ["roles", "scopes"] and not roles.patch.scopes


def test_keys_rotate_overlap():
    default = keys.rotate_request(parse("keys", "rotate", "key_1", "--tenant", "t"))
    assert not default.HasField("overlap_seconds")
    now = keys.rotate_request(parse("keys", "rotate", "key_1", "--tenant", "t", "--overlap", "0"))
    assert now.HasField("overlap_seconds") and now.overlap_seconds == 0
    hour = keys.rotate_request(parse("keys", "rotate", "key_1", "--tenant", "t", "--overlap", "1h"))
    assert hour.overlap_seconds == 3600
    month = keys.rotate_request(parse("keys", "rotate", "key_1", "--tenant", "t",
                                      "--overlap", "30d"))
    assert month.overlap_seconds == 30 * 86400


def test_list_filters():
    request = keys.list_request(parse("keys", "list", "--tenant", "t", "--team", "ml",
                                      "--owner", "users/a@x.io", "--status", "revoked"))
    assert (request.team, request.owner, request.status) == ("ml", "users/a@x.io", "revoked")
    events = audit.list_request(parse("audit", "list", "--tenant", "t", "--object", "key_1",
                                      "--action", "keys.revoke"))
    assert (events.tenant, events.object_id, events.action) == ("t", "key_1", "keys.revoke")


# -- bad input: exit 2, one line -------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tenants", "update", "acme"], "nothing to update: give at least one of --display-name"),
        (["teams", "update", "ml", "--tenant", "t"], "nothing to update"),
        (["users", "update", "a@x.io", "--tenant", "t"], "nothing to update"),
        (["service-accounts", "update", "bot", "--tenant", "t"], "nothing to update"),
        (["keys", "update", "key_1", "--tenant", "t"], "nothing to update"),
        (["users", "update", "a@x.io", "--tenant", "t", "--role", "viewer", "--clear-roles"],
         "choose one of --role and --clear-roles"),
        (["keys", "update", "k", "--tenant", "t", "--model", "demo", "--any-model"],
         "choose one of --model and --any-model"),
        (["keys", "update", "k", "--tenant", "t", "--expires", "soon"], "--expires: 'soon'"),
        (["keys", "create", "--tenant", "t", "--name", "x", "--expires", "2001-01-01"],
         "in the past"),
        (["keys", "create", "--tenant", "t", "--name", "x", "--owner", "bob"],
         "--owner: 'bob' is not users/"),
        (["keys", "create", "--tenant", "t", "--name", " "], "--name must not be empty"),
        (["keys", "list", "--tenant", "t", "--owner", "teams/ml"], "--owner"),
        (["keys", "rotate", "k", "--tenant", "t", "--overlap", "31d"], "at most 30 days"),
        (["keys", "rotate", "k", "--tenant", "t", "--overlap=-1h"], "--overlap: '-1h'"),
        (["users", "create", "--tenant", "t", "--email", "a@x.io", "--member", "ml"],
         "--member"),
    ],
)
def test_bad_flag_values_exit_2_with_one_line(argv, message, capsys, fake):
    auth = fake()
    assert main([*argv, *GATEWAY]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert auth.calls == []  # nothing was sent


@pytest.mark.parametrize(
    "argv",
    [
        ["keys", "create", "--tenant", "t", "--name", "x", "--role", "owner"],
        ["keys", "create", "--tenant", "t", "--name", "x", "--scope", "everything"],
        ["keys", "list", "--tenant", "t", "--status", "bogus"],
        ["keys", "list", "--tenant", "t", "--page-size", "0"],
        ["tenants", "list", "--page-size", "1001"],
        ["teams", "list", "--tenant", "t", "--page-size", "ten"],
        ["users", "update", "a", "--tenant", "t", "--status", "gone"],
        ["teams", "list"],  # --tenant is required
        ["keys", "create", "--tenant", "t"],  # --name is required
    ],
)
def test_argparse_rejects_bad_values_with_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, *GATEWAY])
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


# -- rendering -------------------------------------------------------------------------------


def test_key_row_and_detail():
    key = sample_key(last_used_time=ts(NOW))
    assert keys.row(key) == (
        "key_1", "ci", "lg_ab12cd", "active", "service_account:sa_1", "team_1", "developer",
        "inference", "demo", "2026-03-31 12:00:00", "2026-03-01 12:00:00",
    )
    open_key = sample_key(models=[], scopes=[], team_id="", expire_time=None)
    assert keys.row(open_key)[5:10] == ("-", "developer", "any", "any", "never")
    detail = keys.format_key(sample_key(status="revoked", revoke_time=ts(NOW), replaced_by="key_2"))
    assert "Revoked:     2026-03-01 12:00:00" in detail
    assert "Replaced by: key_2" in detail and "Scopes:      inference" in detail


def test_user_and_audit_rows():
    user = pb.User(id="usr_1", email="a@x.io", roles=["tenant_admin"], status="active",
                   memberships=[pb.TeamMembership(team="team_1", roles=["developer", "viewer"])],
                   create_time=ts(NOW))
    assert users.row(user) == ("a@x.io", "usr_1", "-", "tenant_admin",
                               "team_1:developer,viewer", "active", "2026-03-01 12:00:00")
    event = pb.AuditEvent(id="aud_1", action="keys.create", object_type="key",
                          object_id="key_1", actor_principal="user:usr_1", actor_key_id="key_0",
                          create_time=ts(NOW))
    assert audit.row(event) == ("2026-03-01 12:00:00", "keys.create", "key", "key_1",
                                "user:usr_1", "key_0", "aud_1")


def test_whoami_table_and_json(fake, capsys):
    reply = pb.GetCallerResponse(tenant_id="ten_1", tenant_name="default", principal_kind="user",
                                 principal_id="usr_1", key_id="key_1", roles=["tenant_admin"])
    fake(GetCaller=[reply, reply])
    assert main(["whoami", *GATEWAY]) == 0
    out = capsys.readouterr().out
    assert "Tenant:    default (ten_1)" in out and "Team:      - (tenant-wide)" in out
    assert "Principal: user usr_1" in out and "Scopes:    any API" in out
    assert main(["whoami", "--json", *GATEWAY]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tenant_name"] == "default" and data["scopes"] == [] and data["team_id"] == ""
    assert whoami.format_caller(reply).count("\n") == 6


def test_list_table_with_next_page_hint(fake, capsys):
    reply = pb.ListApiKeysResponse(keys=[sample_key()], next_page_token="tok2")
    auth = fake(ListApiKeys=reply)
    assert main(["keys", "list", "--tenant", "acme", "--page-size", "1", *GATEWAY]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "PREFIX", "STATUS", "OWNER", "TEAM", "ROLES",
                                "SCOPES", "MODELS", "EXPIRES", "LAST", "USED"]
    assert lines[1].startswith("key_1") and len(lines) == 2
    assert "--page-token tok2" in captured.err
    method, request = auth.calls[0]
    assert method == "ListApiKeys" and request.page_size == 1 and request.tenant == "acme"


def test_list_all_follows_next_page_token(fake, capsys):
    pages = [pb.ListTeamsResponse(teams=[pb.Team(id="team_1", name="a")], next_page_token="p2"),
             pb.ListTeamsResponse(teams=[pb.Team(id="team_2", name="b")], next_page_token="p3"),
             pb.ListTeamsResponse(teams=[pb.Team(id="team_3", name="c")])]
    auth = fake(ListTeams=pages)
    assert main(["teams", "list", "--tenant", "t", "--all", "--page-size", "1",
                 "--page-token", "p1", "--json", *GATEWAY]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [t["name"] for t in data["teams"]] == ["a", "b", "c"]
    assert data["next_page_token"] == ""
    assert [r.page_token for _, r in auth.calls] == ["p1", "p2", "p3"]
    assert {r.page_size for _, r in auth.calls} == {1}


def test_empty_list_says_so(fake, capsys):
    fake(ListAuditEvents=pb.ListAuditEventsResponse())
    assert main(["audit", "list", "--tenant", "t", *GATEWAY]) == 0
    assert capsys.readouterr().out == "No audit events.\n"
    fake(ListAuditEvents=pb.ListAuditEventsResponse())
    assert main(["audit", "list", "--tenant", "t", "--json", *GATEWAY]) == 0
    assert json.loads(capsys.readouterr().out) == {"events": [], "next_page_token": ""}


def test_create_prints_the_secret_once_with_a_warning(fake, capsys):
    reply = pb.CreateApiKeyResponse(key=sample_key(), secret="lg_ab12cd_secret")
    fake(CreateApiKey=[reply, reply])
    assert main(["keys", "create", "--tenant", "acme", "--name", "ci", *GATEWAY]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("lg_ab12cd_secret") == 1
    assert "Secret: lg_ab12cd_secret" in captured.out and "ID:        key_1" in captured.out
    assert "only time the secret is shown" in captured.err
    assert main(["keys", "create", "--tenant", "acme", "--name", "ci", "--json", *GATEWAY]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["secret"] == "lg_ab12cd_secret" and data["key"]["scopes"] == ["inference"]


def test_rotate_prints_the_new_secret_and_the_old_keys_end(fake, capsys):
    previous = sample_key(replaced_by="key_2", expire_time=ts(NOW + timedelta(hours=1)))
    reply = pb.RotateApiKeyResponse(key=sample_key(id="key_2"), secret="lg_new_secret",
                                    previous=previous)
    auth = fake(RotateApiKey=reply)
    assert main(["keys", "rotate", "key_1", "--tenant", "acme", "--overlap", "1h", *GATEWAY]) == 0
    captured = capsys.readouterr()
    assert "successor is key_2" in captured.out and "until 2026-03-01 13:00:00 UTC" in captured.out
    assert "Secret: lg_new_secret" in captured.out and "only time" in captured.err
    assert auth.calls[0][1].overlap_seconds == 3600


def test_update_sends_the_mask_and_shows_the_object(fake, capsys):
    reply = pb.UpdateTeamResponse(team=pb.Team(id="team_1", name="ml", display_name="ML",
                                               etag="r2"))
    auth = fake(UpdateTeam=reply)
    assert main(["teams", "update", "ml", "--tenant", "t", "--display-name", "ML", "--etag", "r1",
                 *GATEWAY]) == 0
    out = capsys.readouterr().out
    assert "Updated team 'ml'." in out and "Display name: ML" in out and "Etag:         r2" in out
    request = auth.calls[0][1]
    assert list(request.update_mask.paths) == ["display_name"] and request.etag == "r1"


def test_delete_prints_one_line(fake, capsys):
    fake(DeleteUser=pb.DeleteUserResponse())
    assert main(["users", "delete", "a@x.io", "--tenant", "t", *GATEWAY]) == 0
    assert capsys.readouterr().out == "Deleted user a@x.io of tenant t; their keys are revoked.\n"


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


@pytest.mark.parametrize(
    ("code", "details", "expected"),
    [
        (grpc.StatusCode.NOT_FOUND, "team not found", "lockgate: NOT_FOUND: team not found"),
        (grpc.StatusCode.ABORTED, "etag mismatch", "lockgate: ABORTED: etag mismatch"),
        (grpc.StatusCode.UNAVAILABLE, "connect failed", "is the stack running?"),
    ],
)
def test_rpc_errors_are_one_line_and_exit_1(code, details, expected, monkeypatch, capsys):
    from lockgate.cli import gateway

    @contextmanager
    def failing(args):
        def invoke(method, request):
            def rpc():
                raise FakeRpcError(code, details)

            return gateway.call(rpc)

        yield invoke

    monkeypatch.setattr(admin, "auth_service", failing)
    assert main(["teams", "get", "ml", "--tenant", "t", *GATEWAY]) == 1
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err


def test_no_admin_key_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("LOCKGATE_KEY", raising=False)
    assert main(["whoami", "--data-dir", str(tmp_path), "--url", "127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert "no admin key" in err and err.count("\n") == 1
