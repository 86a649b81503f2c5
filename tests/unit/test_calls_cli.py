"""`lockgate calls` (rows, flags) and the body-logging flags of `lockgate apis`,
and the conversion of Envoy access log entries to call records."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from envoy.data.accesslog.v3 import accesslog_pb2 as log_pb

from lockgate.cli import apis, calls
from lockgate.cli.errors import CliError
from lockgate.cli.main import build_parser, main
from lockgate.ledger.v1 import ledger_service_pb2 as pb
from lockgate.registry.v1 import registry_service_pb2 as reg_pb
from services.ledger.als import RESPONSE_FLAGS, call_record, response_flags

GATEWAY = ("--url", "127.0.0.1:1", "--key", "lg_x")


def parse(*argv: str):
    return build_parser().parse_args([*argv, *GATEWAY])


def test_calls_rows_show_status_flags_upstream_and_usage():
    record = pb.CallRecord(
        request_id="r1", http_method="POST", path="/v1/chat/completions", response_code=200,
        duration_ms=12, upstream_cluster="router",
        usage=pb.UsageEntry(alias="demo", usage={"input_tokens": 3, "output_tokens": 4}),
    )
    record.start_time.FromDatetime(datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC))
    assert calls.row(record) == ("2026-03-01 12:00:05", "r1", "POST", "/v1/chat/completions",
                                 "200", "-", "12", "router", "demo", "7")
    denied = pb.CallRecord(request_id="r2", path="/v1/" + "x" * 100, response_code=401,
                           response_flags="UAEX")
    row = calls.row(denied)
    assert row[4:6] == ("401", "UAEX") and row[-2:] == ("-", "-") and row[0] == "-"
    assert len(row[3]) == calls.MAX_PATH_COLUMN and row[3].endswith("…")


def test_calls_flags():
    args = parse("calls", "--limit", "5", "--request-id", "abc", "--json")
    assert (args.limit, args.request_id, args.json) == (5, "abc", True)
    with pytest.raises(CliError) as err:
        calls.run(parse("calls", "--limit", "0"))
    assert err.value.code == 2
    assert main(["calls", "--limit", "-1", *GATEWAY]) == 2


def test_apis_log_bodies_flags():
    created = apis.create_request(parse("apis", "create", "--name", "chat", "--kind", "model",
                                        "--log-bodies"))
    assert created.log_bodies is True
    assert apis.create_request(parse("apis", "create", "--name", "chat", "--kind",
                                     "model")).log_bodies is False
    on = apis.update_request(parse("apis", "update", "api_1", "--log-bodies"))
    assert (list(on.update_mask.paths), on.patch.log_bodies) == (["log_bodies"], True)
    off = apis.update_request(parse("apis", "update", "api_1", "--no-log-bodies"))
    assert (list(off.update_mask.paths), off.patch.log_bodies) == (["log_bodies"], False)
    with pytest.raises(SystemExit):
        parse("apis", "update", "api_1", "--log-bodies", "--no-log-bodies")
    assert "Log bodies:" in apis.format_api(reg_pb.Api(name="chat", log_bodies=True))


def test_every_response_flag_of_envoy_has_its_short_name():
    fields = set(log_pb.ResponseFlags.DESCRIPTOR.fields_by_name)
    assert {name for name, _ in RESPONSE_FLAGS} == fields
    flags = log_pb.ResponseFlags(rate_limited=True, no_healthy_upstream=True)
    assert response_flags(flags) == "UH,RL"
    flags.unauthorized_details.reason = log_pb.ResponseFlags.Unauthorized.EXTERNAL_SERVICE
    assert response_flags(flags) == "UH,RL,UAEX"
    assert response_flags(log_pb.ResponseFlags()) == ""


def test_call_record_conversion_is_bounded_and_falls_back():
    entry = log_pb.HTTPAccessLogEntry()
    entry.request.request_id = "r" * 300
    entry.request.path = "/lockgate.router.v1.RouterService/OpenAIChatCompletions"
    entry.request.request_headers["x-envoy-original-path"] = "/v1/chat/completions?token=abc"
    entry.request.request_headers["x-lockgate-tenant-id"] = "t" * 100
    entry.common_properties.time_to_last_downstream_tx_byte.FromMilliseconds(1500)
    received = datetime(2026, 3, 1, tzinfo=UTC)
    row = call_record(entry, received)
    assert len(row["request_id"]) == 128 and len(row["tenant_id"]) == 64
    assert row["path"] == "/v1/chat/completions?token=[REDACTED]"
    assert (row["duration_ms"], row["start_time"], row["http_method"]) == (1500, received, "")
    assert (row["response_code"], row["upstream_host"], row["key_id"]) == (0, "", "")
