"""Rate limits without I/O: minute windows, OpenAI's duration format, the in-process
counters, which limits apply to a call, the token and request verdicts, the
descriptors Envoy sends and the 429 bodies, the Envoy template and the CLI."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
import yaml
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2 as rl_common

from lockgate import rate_headers
from lockgate.cli import limits as limits_cli
from lockgate.cli.errors import CliError
from lockgate.cli.main import build_parser
from lockgate.direct_rest import DIRECT_REST
from lockgate.identity import Identity
from lockgate.stack.envoy_config import render
from lockgate.stack.layout import StackLayout
from services.ledger import limits
from services.ledger.edge_ratelimit import DESCRIPTOR_HEADERS, DOMAIN, call_of, error_body
from services.ledger.limits import (
    LimitIndex,
    LimitRule,
    RateLimitService,
    RequestVerdict,
    _check_rates,
    _checked_scope,
    _require_manager,
)
from services.ledger.rate_counters import WINDOW_MS, MemoryCounters, Window, counter_name
from services.ledger.scopes import RATE_LIMIT_SCOPES, CallScopes

MINUTE = 1_800_000_000_000 - 1_800_000_000_000 % WINDOW_MS  # an epoch ms on a minute


class Clock:
    def __init__(self, ms: int):
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


# -- windows and headers ---------------------------------------------------------------


def test_windows_are_fixed_minutes_aligned_to_the_clock():
    w = Window.at(MINUTE + 59_999)
    assert (w.start_ms, w.end_ms) == (MINUTE, MINUTE + 60_000)
    assert Window.at(MINUTE + 60_000).start_ms == MINUTE + 60_000
    assert w.reset_ms(MINUTE + 12_500) == 47_500
    assert w.reset_ms(MINUTE + 70_000) == 0


@pytest.mark.parametrize(("ms", "text"), [
    (0, "0s"), (-5, "0s"), (6, "6ms"), (999, "999ms"), (1000, "1s"), (1500, "1.5s"),
    (12_000, "12s"), (17_280, "17.28s"), (59_999, "59.999s"), (60_000, "1m0s"),
    (90_500, "1m30.5s"), (360_000, "6m0s"), (3_723_000, "1h2m3s"), (3_600_000, "1h0m0s"),
])
def test_openai_duration_format(ms, text):
    assert rate_headers.openai_duration(ms) == text


@pytest.mark.parametrize(("ms", "seconds"), [(1, 1), (999, 1), (1000, 1), (1001, 2),
                                              (27_169, 28), (60_000, 60), (0, 1)])
def test_retry_after_is_whole_seconds_rounded_up(ms, seconds):
    assert rate_headers.retry_after_seconds(ms) == seconds


def test_header_names_are_openais():
    assert rate_headers.headers("requests", 10, -3, 1500) == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1.5s",
    }


# -- in-process counters ---------------------------------------------------------------


async def test_acquire_is_all_or_nothing():
    counters = MemoryCounters(Clock(MINUTE + 1000))
    w = Window.at(MINUTE + 1000)
    assert await counters.acquire(w, ["a", "b"], [2, 5], 1) == (True, [1, 1])
    assert await counters.acquire(w, ["a", "b"], [2, 5], 1) == (True, [2, 2])
    # "a" is full: nothing is added anywhere, and the counts say why.
    assert await counters.acquire(w, ["a", "b"], [2, 5], 1) == (False, [2, 2])
    assert await counters.read(w, ["a", "b", "c"]) == [2, 2, 0]
    assert await counters.acquire(w, ["b"], [5], 3) == (True, [5])
    assert await counters.acquire(w, ["b"], [5], 1) == (False, [5])


async def test_taking_back_never_goes_below_zero():
    counters = MemoryCounters(Clock(MINUTE + 1000))
    w = Window.at(MINUTE + 1000)
    await counters.add(w, ["a", "b"], 3)
    await counters.add(w, ["a", "b"], -2)
    assert await counters.read(w, ["a", "b"]) == [1, 1]
    # More than was counted (a ledger restarted since): no room beyond the limit.
    await counters.add(w, ["a", "c"], -5)
    assert await counters.read(w, ["a", "c"]) == [0, 0]
    assert await counters.acquire(w, ["a"], [1], 2) == (False, [0])


async def test_ended_windows_are_dropped_and_never_counted_again():
    clock = Clock(MINUTE + 1000)
    counters = MemoryCounters(clock)
    first = Window.at(clock.ms)
    for i in range(100):
        await counters.add(first, [f"k{i}"], 7)
    assert len(counters) == 100
    clock.ms += WINDOW_MS  # the next minute
    second = Window.at(clock.ms)
    assert await counters.read(second, ["k1"]) == [0]
    assert len(counters) == 0  # the ended window is gone: memory stays bounded
    await counters.add(first, ["k1"], 5)  # late tokens of the ended window: ignored
    assert await counters.read(first, ["k1"]) == [0] and len(counters) == 0
    assert await counters.acquire(first, ["k1"], [1], 5) == (True, [0, ])


def test_counter_names_keep_the_scope_id_last_and_the_tenant_as_hash_tag():
    assert counter_name("req", "ten_a", "alias", "gpt:4") == "{ten_a}:req:alias:gpt:4"
    assert counter_name("tok", "ten_a", "key", "key_1") != counter_name("req", "ten_a", "key",
                                                                         "key_1")


# -- which limits apply ----------------------------------------------------------------


def rule(scope: str, scope_id: str, rpm: int = 0, tpm: int = 0, tenant: str = "ten_a"):
    return LimitRule(f"rl_{scope}_{scope_id}", tenant, scope, scope_id, rpm, tpm)


def test_index_finds_one_limit_per_scope_of_the_call():
    index = LimitIndex()
    index.replace_all([
        rule("tenant", "ten_a", rpm=100), rule("team", "team_1", rpm=50),
        rule("key", "key_1", rpm=5), rule("alias", "demo", tpm=1000),
        rule("key", "key_1", rpm=7, tenant="ten_b"),  # another tenant's key of the same id
    ])
    call = CallScopes("ten_a", team_id="team_1", key_id="key_1", subscription_id="sub_1",
                      alias="demo")
    assert {r.scope for r in index.applying(call)} == {"tenant", "team", "key", "alias"}
    assert [r.requests_per_minute for r in index.applying(CallScopes("ten_b", key_id="key_1"))
            ] == [7]
    assert index.applying(CallScopes("ten_c", key_id="key_1")) == []
    assert [r.scope for r in index.applying(CallScopes("ten_a", alias="other"))] == ["tenant"]


def test_index_put_and_remove_keep_the_tenant_fast_path_right():
    index = LimitIndex()
    index.put(rule("key", "key_1", rpm=1))
    index.put(rule("key", "key_1", rpm=2))  # replaced, not added
    index.put(rule("alias", "demo", rpm=3))
    assert len(index) == 2
    index.remove(("ten_a", "key", "key_1"))
    assert [r.scope for r in index.applying(CallScopes("ten_a", key_id="key_1", alias="demo"))
            ] == ["alias"]
    index.remove(("ten_a", "alias", "demo"))
    index.remove(("ten_a", "alias", "demo"))  # twice: harmless
    assert index.applying(CallScopes("ten_a", alias="demo")) == []
    assert index._tenants == {}


def service_with(*rules, clock: Clock | None = None) -> RateLimitService:
    clock = clock or Clock(MINUTE + 15_000)
    service = RateLimitService(None, MemoryCounters(clock), clock_ms=clock)
    service.index.replace_all(rules)
    return service


# -- requests --------------------------------------------------------------------------


async def test_requests_count_in_every_limit_and_a_refusal_counts_nowhere():
    service = service_with(rule("key", "key_1", rpm=2), rule("tenant", "ten_a", rpm=3))
    k1 = CallScopes("ten_a", key_id="key_1")
    k2 = CallScopes("ten_a", key_id="key_2")
    first = await service.acquire_requests(k1)
    assert first == RequestVerdict(True, limit=2, remaining=1, reset_ms=45_000)
    await service.acquire_requests(k1)
    refused = await service.acquire_requests(k1)
    assert not refused.allowed and refused.limit == 2 and refused.retry_after_seconds == 45
    assert "key key_1" in refused.message and "requests per minute" in refused.message
    assert "limit 2, used 2" in refused.message
    # key_1's refused call did not use the tenant's third request: key_2 gets it.
    third = await service.acquire_requests(k2)
    assert third == RequestVerdict(True, limit=3, remaining=0, reset_ms=45_000)
    tenant_full = await service.acquire_requests(k2)
    assert not tenant_full.allowed and "tenant ten_a" in tenant_full.message


async def test_no_request_limit_means_no_counting_and_no_headers():
    service = service_with(rule("key", "key_1", tpm=100))
    verdict = await service.acquire_requests(CallScopes("ten_a", key_id="key_1"))
    assert verdict == RequestVerdict(allowed=True) and verdict.limit == 0
    assert len(service.counters) == 0


async def test_the_limits_reset_with_the_next_minute():
    clock = Clock(MINUTE + 59_000)
    service = service_with(rule("alias", "demo", rpm=1), clock=clock)
    call = CallScopes("ten_a", alias="demo")
    assert (await service.acquire_requests(call)).allowed
    refused = await service.acquire_requests(call)
    assert not refused.allowed and refused.retry_after_seconds == 1 and refused.reset_ms == 1000
    clock.ms = MINUTE + 60_000
    assert (await service.acquire_requests(call)).allowed


# -- tokens ----------------------------------------------------------------------------


def entry(tokens_in: int, tokens_out: int, *, key: str = "key_1", at: int | None = None,
          **extra) -> dict:
    created = datetime.fromtimestamp((at or MINUTE + 10_000) / 1000, UTC)
    return {"tenant_id": "ten_a", "key_id": key, "alias": "demo", "input_tokens": tokens_in,
            "output_tokens": tokens_out, "created_at": created, **extra}


async def test_check_tokens_does_not_count_and_usage_does():
    service = service_with(rule("key", "key_1", tpm=1000), rule("alias", "demo", tpm=5000))
    call = CallScopes("ten_a", key_id="key_1", alias="demo")
    assert service.has_token_limits(call)
    assert not service.has_token_limits(CallScopes("ten_a", key_id="key_2", alias="other"))
    for _ in range(3):  # checking is free
        verdict = await service.check_tokens(call, 400)
        assert (verdict.allowed, verdict.limit, verdict.remaining) == (True, 1000, 600)
    await service.usage_recorded([entry(300, 400)])
    verdict = await service.check_tokens(call, 300)
    assert (verdict.allowed, verdict.limit, verdict.remaining) == (True, 1000, 0)
    assert verdict.reset_ms == 45_000
    refused = await service.check_tokens(call, 301)
    assert not refused.allowed and refused.remaining == 0 and refused.retry_after_seconds == 45
    assert "key key_1 on tokens per minute: limit 1000, used 700, requested 301" in refused.message
    # Another key of the same alias only sees the alias's limit.
    other = await service.check_tokens(CallScopes("ten_a", key_id="key_2", alias="demo"), 301)
    assert (other.allowed, other.limit, other.remaining) == (True, 5000, 3999)


async def test_a_call_larger_than_the_whole_limit_is_refused_for_good():
    service = service_with(rule("team", "team_1", tpm=100))
    verdict = await service.check_tokens(CallScopes("ten_a", team_id="team_1"), 101)
    assert not verdict.allowed and verdict.retry_after_seconds == 0
    assert "can never fit" in verdict.message and "team team_1" in verdict.message


async def test_usage_skips_cache_hits_ended_windows_and_unlimited_calls():
    clock = Clock(MINUTE + 70_000)  # the second minute
    service = service_with(rule("key", "key_1", tpm=1000), clock=clock)
    await service.usage_recorded([
        entry(100, 100, cache_hit=True, at=MINUTE + 65_000),  # no provider call
        entry(100, 100, at=MINUTE + 30_000),  # its minute is over
        entry(100, 100, key="key_2", at=MINUTE + 65_000),  # no limit applies
        entry(10, 20, at=MINUTE + 65_000),
        entry(1, 2, at=MINUTE + 99_000),  # the router's clock is ahead: counts now
    ])
    verdict = await service.check_tokens(CallScopes("ten_a", key_id="key_1"), 0)
    assert verdict.remaining == 1000 - 33
    assert len(service.counters) == 1


# -- admin checks ----------------------------------------------------------------------


def who(*roles: str, team: str = "team_1") -> Identity:
    return Identity(tenant_id="ten_a", key_id="key_x", roles=roles, team_id=team)


@pytest.mark.parametrize(("scope", "scope_id", "expected"), [
    ("tenant", "", ("tenant", "ten_a")),
    ("tenant", "ten_a", ("tenant", "ten_a")),
    ("team", "team_9", ("team", "team_9")),
    ("key", "key_3f2a", ("key", "key_3f2a")),
    ("alias", "gpt-4o:mini/eu", ("alias", "gpt-4o:mini/eu")),
])
def test_scope_ids(scope, scope_id, expected):
    assert _checked_scope(who("tenant_admin"), scope, scope_id) == expected


@pytest.mark.parametrize(("scope", "scope_id", "hint"), [
    ("subscription", "sub_1", "scope must be one of"),
    ("", "", "scope must be one of"),
    ("tenant", "ten_b", "caller's tenant"),
    ("team", "", "required"),
    ("team", "key_1", "team id"),
    ("key", "team_1", "API key id"),
    ("key", "key_1; drop", "API key id"),
    ("alias", "two words", "model alias"),
    ("alias", "x" * 257, "model alias"),
])
def test_bad_scopes_are_refused(scope, scope_id, hint):
    with pytest.raises(limits.InvalidRequest) as err:
        _checked_scope(who("tenant_admin"), scope, scope_id)
    assert hint in err.value.message


@pytest.mark.parametrize(("rpm", "tpm"), [(0, 0), (-1, 5), (5, -1), (10_000_001, 0),
                                          (0, 10_000_000_001)])
def test_bad_rates_are_refused(rpm, tpm):
    with pytest.raises(limits.InvalidRequest):
        _check_rates(rpm, tpm)


def test_team_admins_manage_only_their_own_team():
    _require_manager(who("platform_admin"), "key", "key_1")
    _require_manager(who("tenant_admin"), "alias", "demo")
    _require_manager(who("team_admin"), "team", "team_1")
    for scope, scope_id in [("team", "team_2"), ("key", "key_1"), ("tenant", "ten_a"),
                            ("alias", "demo")]:
        with pytest.raises(limits.PermissionDenied):
            _require_manager(who("team_admin"), scope, scope_id)
    with pytest.raises(limits.PermissionDenied):  # a team admin without a team
        _require_manager(who("team_admin", team=""), "team", "")
    with pytest.raises(limits.PermissionDenied):
        _require_manager(who("developer"), "key", "key_x")


# -- the edge: descriptors and answers -------------------------------------------------


def descriptor(**entries: str):
    return rl_common.RateLimitDescriptor(
        entries=[rl_common.RateLimitDescriptor.Entry(key=k, value=v) for k, v in entries.items()]
    )


def test_descriptors_become_call_scopes():
    scopes, path = call_of(descriptor(tenant="ten_a", team="team_1", key="key_1", alias="demo",
                                      path="/v1/chat/completions"))
    assert scopes == CallScopes("ten_a", team_id="team_1", key_id="key_1", alias="demo")
    assert path == "/v1/chat/completions"
    assert call_of(descriptor(tenant="ten_a")) == (CallScopes("ten_a"), "")
    assert call_of(descriptor(key="key_1", alias="demo")) is None  # no tenant, no counting


def test_429_bodies_speak_the_clients_dialect():
    verdict = RequestVerdict(False, 2, 0, 1000, 1, "Rate limit reached for key key_1 …")
    body, ctype = error_body(verdict, "/v1/chat/completions")
    assert ctype == "application/json"
    assert orjson.loads(body) == {"error": {"message": verdict.message, "type": "requests",
                                            "param": None, "code": "rate_limit_exceeded"}}
    body, _ = error_body(verdict, "/v1/messages?beta=true")
    assert orjson.loads(body) == {"type": "error", "error": {"type": "rate_limit_error",
                                                             "message": verdict.message}}
    assert error_body(verdict, "") == (verdict.message.encode(), "")  # gRPC: grpc-message


def _template():
    return yaml.safe_load(render(StackLayout()))


def test_envoy_asks_the_ledger_after_ext_authz_and_fails_open():
    hcm = _template()["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]
    names = [f["name"] for f in hcm["http_filters"]]
    assert names.index("envoy.filters.http.ratelimit") == names.index(
        "envoy.filters.http.ext_authz") + 1
    config = hcm["http_filters"][names.index("envoy.filters.http.ratelimit")]["typed_config"]
    assert config["domain"] == DOMAIN
    assert config["failure_mode_deny"] is False
    assert config["enable_x_ratelimit_headers"] == "OFF"
    assert config["rate_limited_as_resource_exhausted"] is True
    assert config["rate_limit_service"]["grpc_service"]["envoy_grpc"]["cluster_name"] == "ledger"
    # Rate-limit refusals keep the ledger's body (not the catch-all rewrite).
    mappers = hcm["local_reply_config"]["mappers"]
    rl = [m for m in mappers if m["filter"].get("response_flag_filter", {}).get("flags") == ["RL"]]
    assert rl and "body_format_override" not in rl[0]
    assert mappers.index(rl[0]) < len(mappers) - 1


def test_only_the_grpc_route_to_the_router_asks_the_edge_limiter():
    """The REST calls routed to the router's HTTP listener are counted by its
    admission instead (tests/integration/test_router_admission.py): asking the
    edge limiter too would count them twice."""
    hcm = _template()["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    limited = {r["match"].get("prefix") or r["match"]["path"]: r for r in routes
               if r["route"].get("rate_limits")}
    assert list(limited) == ["/lockgate.router.v1.RouterService/"]
    direct = {path for _, path in DIRECT_REST}
    assert direct <= {r["match"].get("path") for r in routes if r["route"].get("cluster") == "router"}
    (policy,) = limited["/lockgate.router.v1.RouterService/"]["route"]["rate_limits"]
    actions = [a["request_headers"] for a in policy["actions"]]
    assert {a["descriptor_key"]: a["header_name"] for a in actions} == DESCRIPTOR_HEADERS
    # Only the tenant is required: without it, Envoy asks (and counts) nothing.
    assert [a["descriptor_key"] for a in actions if not a.get("skip_if_absent")] == ["tenant"]


# -- CLI -------------------------------------------------------------------------------


def cli(*argv: str):
    return build_parser().parse_args(["limits", *argv])


def test_cli_scopes_match_the_ledger():
    assert limits_cli.SCOPES == RATE_LIMIT_SCOPES


@pytest.mark.parametrize(("argv", "scope", "scope_id", "rpm", "tpm"), [
    (("--tenant", "--rpm", "100"), "tenant", "", 100, 0),
    (("--team", "team_1", "--tpm", "50_000"), "team", "team_1", 0, 50_000),
    (("--key", "key_1", "--rpm", "5", "--tpm", "900"), "key", "key_1", 5, 900),
    (("--alias", "demo", "--rpm", "1"), "alias", "demo", 1, 0),
])
def test_cli_set_builds_the_request(argv, scope, scope_id, rpm, tpm):
    request = limits_cli.set_request(cli("set", *argv))
    assert (request.scope, request.scope_id, request.requests_per_minute,
            request.tokens_per_minute) == (scope, scope_id, rpm, tpm)


def test_cli_set_needs_one_scope_and_a_rate(capsys):
    with pytest.raises(CliError) as err:
        limits_cli.set_request(cli("set", "--key", "key_1"))
    assert err.value.code == 2
    for argv in (("--rpm", "5"), ("--tenant", "--key", "key_1", "--rpm", "1"),
                 ("--tenant", "--rpm", "-1"), ("--tenant", "--rpm", "many")):
        with pytest.raises(SystemExit) as exit_:
            cli("set", *argv)
        assert exit_.value.code == 2
    # --key names the limited key; the admin key is --admin-key there.
    parsed = cli("set", "--key", "key_1", "--rpm", "1", "--admin-key", "lg_admin")
    assert parsed.key_id == "key_1" and parsed.key == "lg_admin"
    assert cli("list", "--key", "lg_admin").key == "lg_admin"
