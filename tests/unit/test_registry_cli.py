"""The registry commands (apis, versions, subscriptions, apis audit): flags ->
RegistryService requests (update masks, prompt specs, sunsets), table and JSON
output of real proto messages, paging, exit codes (bad flags 2, failed calls and
a broken audit chain 1, one line)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from lockgate.auth.v1 import auth_service_pb2 as auth_pb
from lockgate.cli import admin, apis, subscriptions, versions
from lockgate.cli.errors import CliError
from lockgate.cli.main import build_parser, main
from lockgate.prompts import compat, spec
from lockgate.prompts import proto as prompt_proto
from lockgate.registry.v1 import registry_service_pb2 as pb
from services.registry import access, catalog, convert
from services.registry import subscriptions as registry_subscriptions

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GATEWAY = ("--key", "lg_test", "--url", "127.0.0.1:1")

PROMPT = {
    "model": "demo",
    "system": "You answer questions about {{ product }}.",
    "user": "{{ question }}",
    "input_schema": {"type": "object", "required": ["question"],
                     "properties": {"question": {"type": "string"},
                                    "product": {"type": "string"}}},
    "output_schema": {"type": "object", "properties": {"answer": {"type": "string"}},
                      "required": ["answer"], "additionalProperties": False},
    "parameters": {"temperature": 0.2, "stop": ["END"]},
}


def parse(*argv: str):
    return build_parser().parse_args([*argv, *GATEWAY])


def ts(when: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(when)
    return out


class FakeService:
    """Stands in for a service's invoke(): records requests, answers from a script."""

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
    def install(**replies) -> FakeService:
        service = FakeService(**replies)
        monkeypatch.setattr(apis, "registry_service", service)
        return service

    return install


def sample_api(**fields) -> pb.Api:
    base = dict(id="api_1", tenant_id="ten_1", name="support", kind=pb.API_KIND_MODEL,
                description="Support chat", model_aliases=["demo"], owner_team_id="team_1",
                visibility="tenant", create_time=ts(NOW), etag="r1")
    base.update(fields)
    return pb.Api(**base)


def sample_version(**fields) -> pb.ApiVersion:
    base = dict(api_id="api_1", version="v1", state="published", description="first",
                model_aliases=["demo"], create_time=ts(NOW), publish_time=ts(NOW), etag="r2")
    base.update(fields)
    return pb.ApiVersion(**base)


def sample_subscription(**fields) -> pb.Subscription:
    base = dict(id="sub_1", api_id="api_1", api_name="support", subscriber_tenant_id="ten_1",
                team_id="team_2", state="pending", justification="dashboards",
                create_time=ts(NOW), etag="r1")
    base.update(fields)
    return pb.Subscription(**base)


# -- the vocabulary matches the registry ------------------------------------------------


def test_vocabulary_matches_the_registry():
    assert apis.VISIBILITIES == access.VISIBILITIES
    assert apis.KINDS == catalog.KINDS == tuple(convert.KIND_TO_PROTO)
    assert apis.NAME_PATTERN.pattern == catalog.NAME_PATTERN.pattern
    assert versions.VERSION_PATTERN.pattern == compat._VERSION.pattern
    assert versions.PROMPT_KEYS == spec._KEYS
    assert subscriptions.STATES == registry_subscriptions.STATES
    for name in ("model", "prompt"):
        assert apis.kind_value(name) == convert.KIND_TO_PROTO[name]
        assert apis.kind_name(convert.KIND_TO_PROTO[name]) == name


def test_every_registry_command_is_registered():
    for argv in (["apis", "list"], ["apis", "get", "a"], ["apis", "audit"],
                 ["apis", "audit", "verify"], ["versions", "list", "a"],
                 ["versions", "get", "a", "v1"], ["versions", "publish", "a", "v2.1"],
                 ["subscriptions", "list"], ["subscriptions", "get", "sub_1"],
                 ["subscriptions", "approve", "sub_1"], ["subscriptions", "reject", "sub_1"],
                 ["subscriptions", "revoke", "sub_1"]):
        assert callable(parse(*argv).handler)


# -- apis: requests ----------------------------------------------------------------------


def test_apis_list_request():
    request = apis.list_request(parse("apis", "list", "--query", "chat", "--kind", "prompt"))
    assert request == pb.ListApisRequest(query="chat", kind=pb.API_KIND_PROMPT)
    assert apis.list_request(parse("apis", "list")) == pb.ListApisRequest()


def test_apis_create_request():
    args = parse("apis", "create", "--name", "support", "--kind", "model", "--description",
                 "Support chat", "--owner-team", "team_1", "--visibility", "shared",
                 "--share-with", "ten_2", "--share-with", "ten_3", "--share-with", "ten_2",
                 "--alias", "demo", "--alias", "claude", "--alias", "demo")
    assert apis.create_request(args) == pb.CreateApiRequest(
        name="support", kind=pb.API_KIND_MODEL, description="Support chat",
        model_aliases=["demo", "claude"], owner_team_id="team_1", visibility="shared",
        shared_tenant_ids=["ten_2", "ten_3"])
    bare = apis.create_request(parse("apis", "create", "--name", "faq", "--kind", "prompt"))
    assert bare == pb.CreateApiRequest(name="faq", kind=pb.API_KIND_PROMPT)


def test_apis_update_masks_only_the_given_flags():
    request = apis.update_request(parse("apis", "update", "support", "--description", "New",
                                        "--etag", "r3"))
    assert list(request.update_mask.paths) == ["description"]
    assert (request.api_id, request.patch.description, request.etag) == ("support", "New", "r3")

    shared = apis.update_request(parse("apis", "update", "api_1", "--visibility", "shared",
                                       "--share-with", "ten_9"))
    assert list(shared.update_mask.paths) == ["visibility", "shared_tenant_ids"]
    assert list(shared.patch.shared_tenant_ids) == ["ten_9"]

    cleared = apis.update_request(parse("apis", "update", "api_1", "--no-share"))
    assert list(cleared.update_mask.paths) == ["shared_tenant_ids"]
    assert not cleared.patch.shared_tenant_ids


def test_owner_team_names_are_resolved_with_the_admin_api(monkeypatch):
    auth = FakeService(GetCaller=auth_pb.GetCallerResponse(tenant_id="ten_1"),
                       GetTeam=auth_pb.GetTeamResponse(team=auth_pb.Team(id="team_7")))
    monkeypatch.setattr(admin, "auth_service", auth)
    args = parse("apis", "create", "--name", "x1", "--kind", "model")
    assert apis.resolve_team(args, "ml") == "team_7"
    assert auth.calls[1] == ("GetTeam", auth_pb.GetTeamRequest(tenant="ten_1", team="ml"))
    # Ids (and no team: the key's) need no call.
    assert apis.resolve_team(args, "team_1") == "team_1"
    assert apis.resolve_team(args, "") == ""
    assert len(auth.calls) == 2


def test_an_unresolvable_team_name_is_one_line(monkeypatch, capsys, fake):
    from lockgate.cli import gateway

    @contextmanager
    def refused(args):
        def invoke(method, request):
            def rpc():
                raise FakeRpcError(grpc.StatusCode.PERMISSION_DENIED, "scope")

            return gateway.call(rpc)

        yield invoke

    monkeypatch.setattr(admin, "auth_service", refused)
    service = fake()
    assert main(["apis", "create", "--name", "x1", "--kind", "model", "--owner-team", "ml",
                 *GATEWAY]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lockgate: --owner-team: cannot look up team 'ml' (PERMISSION_DENIED")
    assert "give the team id" in err and err.count("\n") == 1 and service.calls == []


def test_apis_create_sends_the_resolved_team(fake, monkeypatch, capsys):
    monkeypatch.setattr(apis, "resolve_team", lambda args, team: "team_7" if team else "")
    service = fake(CreateApi=pb.CreateApiResponse(api=sample_api(owner_team_id="team_7")))
    assert main(["apis", "create", "--name", "support", "--kind", "model", "--owner-team",
                 "ml", "--alias", "demo", *GATEWAY]) == 0
    out = capsys.readouterr().out
    assert "Created API 'support' (api_1)." in out
    assert "lockgate versions publish api_1 v1" in out and "Owner team:    team_7" in out
    assert service.calls[0][1].owner_team_id == "team_7"


# -- versions: requests ------------------------------------------------------------------


def test_versions_create_with_aliases():
    request = versions.create_request(parse("versions", "create", "support", "v2",
                                            "--description", "faster", "--alias", "demo",
                                            "--alias", "demo"))
    assert request == pb.CreateVersionRequest(api_id="support", version="v2",
                                              description="faster", model_aliases=["demo"])
    assert not request.HasField("prompt")


def test_prompt_file_is_sent_as_the_registry_stores_it(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(PROMPT))
    request = versions.create_request(parse("versions", "create", "faq", "v1.1",
                                            "--prompt-file", str(path)))
    assert request.version == "v1.1" and request.HasField("prompt")
    # The same message the registry makes of the stored form, and back.
    assert request.prompt == prompt_proto.prompt_to_proto(PROMPT)
    assert prompt_proto.prompt_from_proto(request.prompt) == PROMPT
    assert versions.prompt_dict(request.prompt) == PROMPT
    assert request.prompt.system_template == PROMPT["system"]
    assert request.prompt.user_template == PROMPT["user"]


def test_whole_numbers_survive_the_struct(tmp_path):
    path = tmp_path / "spec.json"
    bound = {**PROMPT, "parameters": {"max_completion_tokens": 500, "seed": 7, "top_p": 1}}
    path.write_text(json.dumps(bound))
    stored = prompt_proto.prompt_from_proto(versions.read_prompt(path))
    assert stored == bound and type(stored["parameters"]["max_completion_tokens"]) is int
    spec.compile_version_spec("faq", "v1", stored)  # what publishing checks


def test_partial_prompt_leaves_the_rest_unset(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text('{"model": "demo", "user": "hi"}')
    prompt = versions.read_prompt(path)
    assert not prompt.HasField("input_schema") and not prompt.HasField("parameters")
    assert prompt_proto.prompt_from_proto(prompt) == {"model": "demo", "user": "hi"}


def test_versions_update_masks_only_the_given_flags(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(PROMPT))
    request = versions.update_request(parse("versions", "update", "faq", "v1", "--description",
                                            "d", "--prompt-file", str(path), "--etag", "r4"))
    assert list(request.update_mask.paths) == ["description", "prompt"]
    assert request.patch.prompt == prompt_proto.prompt_to_proto(PROMPT) and request.etag == "r4"
    aliases = versions.update_request(parse("versions", "update", "api_1", "v1", "--alias",
                                            "claude"))
    assert list(aliases.update_mask.paths) == ["model_aliases"]
    assert list(aliases.patch.model_aliases) == ["claude"]
    cleared = versions.update_request(parse("versions", "update", "api_1", "v1",
                                            "--no-aliases"))
    assert list(cleared.update_mask.paths) == ["model_aliases"]
    assert not cleared.patch.model_aliases


@pytest.mark.parametrize(
    ("sunset", "expected"),
    [("45d", NOW + timedelta(days=45)), ("30s", NOW + timedelta(seconds=30)),
     ("2027-01-31", datetime(2027, 1, 31, tzinfo=UTC)),
     ("2027-01-31T12:00:00+01:00", datetime(2027, 1, 31, 11, tzinfo=UTC))],
)
def test_deprecate_request(sunset, expected):
    args = parse("versions", "deprecate", "support", "v1", "--sunset", sunset,
                 "--successor", "v2")
    request = versions.deprecate_request(args, NOW)
    assert (request.api_id, request.version, request.successor) == ("support", "v1", "v2")
    assert request.sunset_time.ToDatetime(tzinfo=UTC) == expected


def test_retire_request():
    plain = versions.retire_request(parse("versions", "retire", "support", "v1"))
    assert plain == pb.RetireVersionRequest(api_id="support", version="v1")
    forced = versions.retire_request(parse("versions", "retire", "support", "v1", "--force",
                                           "--reason", " incident 42 "))
    assert forced == pb.RetireVersionRequest(api_id="support", version="v1", force=True,
                                             reason="incident 42")


# -- subscriptions: requests -------------------------------------------------------------


def test_subscription_requests():
    listing = subscriptions.list_request(parse("subscriptions", "list", "--pending", "--api",
                                               "support", "--state", "approved"))
    assert listing == pb.ListSubscriptionsRequest(pending_approval=True, api_id="support",
                                                  state="approved")
    create = subscriptions.create_request(parse("subscriptions", "create", "--api", "api_1",
                                                "--version", "v2", "--justification",
                                                " reports "))
    assert create == pb.CreateSubscriptionRequest(api_id="api_1", version="v2",
                                                  justification="reports")
    every = subscriptions.create_request(parse("subscriptions", "create", "--api", "api_1"))
    assert every.version == ""
    for action, message in (("approve", pb.ApproveSubscriptionRequest),
                            ("reject", pb.RejectSubscriptionRequest),
                            ("revoke", pb.RevokeSubscriptionRequest)):
        request = subscriptions.decide_request(parse("subscriptions", action, "sub_1",
                                                     "--reason", "ok"))
        assert request == message(subscription_id="sub_1", reason="ok")


@pytest.mark.parametrize(
    ("argv", "method", "verb"),
    [(["approve", "sub_1"], "ApproveSubscription", "Approved"),
     (["reject", "sub_1", "--reason", "no"], "RejectSubscription", "Rejected"),
     (["revoke", "sub_1"], "RevokeSubscription", "Revoked")],
)
def test_decisions_call_their_method(argv, method, verb, fake, capsys):
    reply_type = getattr(pb, f"{method}Response")
    service = fake(**{method: reply_type(subscription=sample_subscription(state="approved"))})
    assert main(["subscriptions", *argv, *GATEWAY]) == 0
    assert f"{verb} subscription sub_1." in capsys.readouterr().out
    assert service.calls[0][0] == method


# -- bad input: exit 2, one line, nothing sent --------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["apis", "create", "--name", "Bad_Name", "--kind", "model"], "--name: 'Bad_Name'"),
        (["apis", "create", "--name", "faq", "--kind", "prompt", "--alias", "demo"],
         "--alias is for model APIs"),
        (["apis", "create", "--name", "faq", "--kind", "model", "--share-with", "ten_2"],
         "--share-with needs --visibility shared"),
        (["apis", "create", "--name", "faq", "--kind", "model", "--visibility", "shared",
          "--share-with", " "], "--share-with: a tenant id must not be empty"),
        (["apis", "update", "support"], "nothing to update: give at least one of"),
        (["apis", "update", "support", "--share-with", "t", "--no-share"],
         "choose one of --share-with and --no-share"),
        (["apis", "audit", "verify", "--object", "api_1"], "takes no --object"),
        (["versions", "update", "support", "v1"], "nothing to update"),
        (["versions", "update", "support", "v1", "--alias", "a", "--no-aliases"],
         "choose one of --alias and --no-aliases"),
        (["versions", "create", "support", "v1", "--alias", " "], "--alias must not be empty"),
        (["versions", "deprecate", "support", "v1", "--sunset", "soon", "--successor", "v2"],
         "--sunset: 'soon'"),
        (["versions", "deprecate", "support", "v1", "--sunset", "2001-01-01",
          "--successor", "v2"], "in the past"),
        (["versions", "deprecate", "support", "v1", "--sunset", "30d", "--successor", "2"],
         "--successor: '2' is not v<major>"),
        (["versions", "deprecate", "support", "v1", "--sunset", "30d", "--successor", "v1"],
         "cannot be its own successor"),
        (["versions", "retire", "support", "v1", "--force"], "--force needs --reason"),
        (["versions", "retire", "support", "v1", "--reason", "x"], "only applies with --force"),
        (["subscriptions", "create", "--api", "support", "--version", "latest"],
         "--version: 'latest'"),
        (["subscriptions", "create", "--api", " "], "--api must not be empty"),
    ],
)
def test_bad_flag_values_exit_2_with_one_line(argv, message, capsys, fake):
    service = fake()
    assert main([*argv, *GATEWAY]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert service.calls == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("{not json", "is not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ("{}", "the spec is empty"),
        ('{"model": "demo", "template": "x"}', "unknown key 'template'"),
        ('{"model": 3}', "'model' must be a string"),
        ('{"user": "x", "input_schema": "object"}', "'input_schema' must be a JSON object"),
    ],
)
def test_bad_prompt_files_exit_2(content, message, tmp_path, capsys, fake):
    path = tmp_path / "spec.json"
    if content is not None:
        path.write_text(content)
    service = fake()
    assert main(["versions", "create", "faq", "v1", "--prompt-file", str(path), *GATEWAY]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("lockgate: --prompt-file: ")
    assert err.count("\n") == 1 and service.calls == []


@pytest.mark.parametrize(
    "argv",
    [
        ["apis", "create", "--name", "x1", "--kind", "chat"],
        ["apis", "create", "--kind", "model"],  # --name is required
        ["apis", "create", "--name", "x1", "--kind", "model", "--visibility", "everyone"],
        ["apis", "list", "--kind", "embeddings"],
        ["apis", "list", "--page-size", "0"],
        ["apis", "audit", "check"],
        ["versions", "get", "support", "1"],
        ["versions", "create", "support", "v01"],
        ["versions", "publish", "support"],  # V is required
        ["versions", "deprecate", "support", "v1", "--successor", "v2"],  # --sunset required
        ["subscriptions", "list", "--state", "open"],
        ["subscriptions", "create"],  # --api is required
        ["subscriptions", "approve"],
    ],
)
def test_argparse_rejects_bad_values_with_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, *GATEWAY])
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


# -- rendering ---------------------------------------------------------------------------


def test_api_row_and_detail():
    api = sample_api()
    assert apis.row(api) == ("support", "api_1", "model", "team_1", "tenant", "demo",
                             "2026-03-01 12:00:00", "r1")
    detail = apis.format_api(sample_api(visibility="shared", shared_tenant_ids=["ten_2"],
                                        model_aliases=[]))
    assert "Shared with:   ten_2" in detail and "Model aliases: -" in detail
    assert "Shared with" not in apis.format_api(api)


def test_version_row_and_detail():
    deprecated = sample_version(state="deprecated", successor="v2",
                                sunset_time=ts(NOW + timedelta(days=30)),
                                deprecate_time=ts(NOW))
    assert versions.row(deprecated) == ("v1", "deprecated", "demo", "2026-03-01 12:00:00",
                                        "2026-03-31 12:00:00", "v2", "r2")
    detail = versions.format_version(deprecated)
    assert "Sunset:        2026-03-31 12:00:00" in detail and "Successor:     v2" in detail
    draft = sample_version(state="draft", publish_time=None, model_aliases=[])
    assert versions.row(draft)[2:5] == ("-", "-", "-")
    assert "Sunset" not in versions.format_version(draft)
    prompt = sample_version(model_aliases=[], prompt=prompt_proto.prompt_to_proto(PROMPT))
    assert versions.row(prompt)[2] == "prompt -> demo"
    assert json.dumps(PROMPT, sort_keys=True) in versions.format_version(prompt)


def test_subscription_row_and_detail():
    pending = sample_subscription()
    assert subscriptions.row(pending) == ("sub_1", "support", "all", "team_2", "ten_1",
                                          "pending", "2026-03-01 12:00:00", "-")
    approved = sample_subscription(version="v2", state="approved", decided_by="user:usr_1",
                                   decision_reason="ok")
    detail = subscriptions.format_subscription(approved)
    assert "API:           support (api_1)" in detail and "Version:       v2" in detail
    assert "Decided by:    user:usr_1" in detail and "Reason:        ok" in detail


def test_apis_list_table_json_and_paging(fake, capsys):
    pages = [pb.ListApisResponse(apis=[sample_api()], next_page_token="p2"),
             pb.ListApisResponse(apis=[sample_api(id="api_2", name="faq",
                                                  kind=pb.API_KIND_PROMPT)])]
    service = fake(ListApis=pages)
    assert main(["apis", "list", "--all", "--page-size", "1", "--json", *GATEWAY]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [a["name"] for a in data["apis"]] == ["support", "faq"]
    assert data["apis"][1]["kind"] == "API_KIND_PROMPT" and data["next_page_token"] == ""
    assert [r.page_token for _, r in service.calls] == ["", "p2"]

    fake(ListApis=pb.ListApisResponse(apis=[sample_api()], next_page_token="p2"))
    assert main(["apis", "list", *GATEWAY]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split() == ["NAME", "ID", "KIND", "OWNER", "TEAM", "VISIBILITY",
                                "ALIASES", "CREATED", "ETAG"]
    assert lines[1].startswith("support") and "--page-token p2" in captured.err

    fake(ListSubscriptions=pb.ListSubscriptionsResponse())
    assert main(["subscriptions", "list", "--pending", *GATEWAY]) == 0
    assert capsys.readouterr().out == "No requests waiting for you.\n"


def test_versions_commands_show_the_version(fake, capsys):
    deprecated = sample_version(state="deprecated", successor="v2",
                                sunset_time=ts(NOW + timedelta(days=45)))
    service = fake(DeprecateVersion=pb.DeprecateVersionResponse(version=deprecated),
                   PublishVersion=pb.PublishVersionResponse(version=sample_version()))
    assert main(["versions", "deprecate", "support", "v1", "--sunset", "45d",
                 "--successor", "v2", *GATEWAY]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Deprecated version v1: sunset 2026-04-15 12:00:00 UTC, successor v2.")
    assert main(["versions", "publish", "support", "v1", "--json", *GATEWAY]) == 0
    assert json.loads(capsys.readouterr().out)["version"]["state"] == "published"
    assert [m for m, _ in service.calls] == ["DeprecateVersion", "PublishVersion"]


def test_subscription_create_says_pending(fake, capsys):
    fake(CreateSubscription=pb.CreateSubscriptionResponse(subscription=sample_subscription()))
    assert main(["subscriptions", "create", "--api", "support", *GATEWAY]) == 0
    out = capsys.readouterr().out
    assert "Requested subscription sub_1: pending" in out and "State:         pending" in out


# -- the audit log -----------------------------------------------------------------------


def test_audit_list(fake, capsys):
    event = pb.AuditEvent(seq=7, id="aud_7", action="versions.publish", object_type="version",
                          object_id="api_1/v1", actor="user:usr_1", decision_id="dec_1",
                          create_time=ts(NOW))
    service = fake(ListAuditEvents=pb.ListAuditEventsResponse(events=[event]))
    assert main(["apis", "audit", "--object", "api_1/v1", *GATEWAY]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["7", "2026-03-01", "12:00:00", "versions.publish", "version",
                                "api_1/v1", "user:usr_1", "dec_1"]
    assert service.calls[0][1] == pb.ListAuditEventsRequest(object_id="api_1/v1")


def test_audit_verify_intact(fake, capsys):
    fake(VerifyAuditChain=[pb.VerifyAuditChainResponse(intact=True, events=42)] * 2)
    assert main(["apis", "audit", "verify", *GATEWAY]) == 0
    assert capsys.readouterr().out == "Audit chain intact: 42 events verified.\n"
    assert main(["apis", "audit", "verify", "--json", *GATEWAY]) == 0
    assert json.loads(capsys.readouterr().out) == {"intact": True, "events": "42",
                                                   "first_bad_seq": "0", "problem": ""}


def test_audit_verify_broken_exits_1_naming_the_first_bad_seq(fake, capsys):
    broken = pb.VerifyAuditChainResponse(intact=False, events=12, first_bad_seq=9,
                                         problem="the event was changed after it was written")
    fake(VerifyAuditChain=[broken, broken])
    assert main(["apis", "audit", "verify", *GATEWAY]) == 1
    assert capsys.readouterr().out == (
        "Audit chain BROKEN at seq 9: the event was changed after it was written"
        " (12 events read).\n")
    assert main(["apis", "audit", "verify", "--json", *GATEWAY]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["first_bad_seq"] == "9"
    assert captured.err == "lockgate: audit chain broken at seq 9\n"


# -- failed calls: one line, exit 1 -------------------------------------------------------


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


@pytest.mark.parametrize(
    ("argv", "code", "details"),
    [
        (["versions", "retire", "support", "v1"], grpc.StatusCode.FAILED_PRECONDITION,
         "the sunset date has not passed: retirement is possible in 3 days"),
        (["subscriptions", "approve", "sub_1"], grpc.StatusCode.PERMISSION_DENIED,
         "only the API's owner team may approve subscriptions"),
        (["apis", "get", "secret"], grpc.StatusCode.NOT_FOUND, "API not found"),
    ],
)
def test_rpc_errors_are_one_line_and_exit_1(argv, code, details, monkeypatch, capsys):
    from lockgate.cli import gateway

    @contextmanager
    def failing(args):
        def invoke(method, request):
            def rpc():
                raise FakeRpcError(code, details)

            return gateway.call(rpc)

        yield invoke

    monkeypatch.setattr(apis, "registry_service", failing)
    assert main([*argv, *GATEWAY]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"lockgate: {code.name}: {details}")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_check_prompt_is_strict():
    with pytest.raises(CliError) as err:
        versions.check_prompt({"parameters": [1]})
    assert err.value.code == 2 and "'parameters' must be a JSON object" in str(err.value)
    assert versions.check_prompt(PROMPT) is PROMPT
