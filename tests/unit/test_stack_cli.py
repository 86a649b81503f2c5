"""CLI pieces that need no running stack: parsing, targets, keys, errors, exit codes."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from lockgate.cli.errors import CliError
from lockgate.cli.gateway import describe_rpc_error, parse_target
from lockgate.cli.main import build_parser, main
from lockgate.cli.options import admin_key, gateway_url
from lockgate.cli.table import format_table
from lockgate.cli.usage import row
from lockgate.common.v1 import common_pb2
from lockgate.ledger.v1 import ledger_service_pb2 as ledger_pb


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ("LOCKGATE_URL", "LOCKGATE_KEY", "LOCKGATE_DATA_DIR", "LOCKGATE_HTTP_PORT"):
        monkeypatch.delenv(var, raising=False)


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("lockgate ")


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("127.0.0.1:8080", ("127.0.0.1:8080", False)),
        ("http://127.0.0.1:9000/v1", ("127.0.0.1:9000", False)),
        ("http://gw.example", ("gw.example:80", False)),
        ("https://gw.example", ("gw.example:443", True)),
        ("https://[::1]:8443/", ("[::1]:8443", True)),
    ],
)
def test_gateway_targets(url, target):
    assert parse_target(url) == target


def test_unsupported_url_scheme():
    with pytest.raises(CliError, match="unsupported gateway URL"):
        parse_target("ftp://x")


def gateway_args(tmp_path, *extra: str):
    return build_parser().parse_args(
        ["usage", "--data-dir", str(tmp_path), *extra]
    )


def test_admin_key_from_flag_env_then_file(tmp_path, monkeypatch):
    with pytest.raises(CliError, match="no admin key"):
        admin_key(gateway_args(tmp_path))
    (tmp_path / "admin.key").write_text("lg_from_file\n")
    assert admin_key(gateway_args(tmp_path)) == "lg_from_file"
    monkeypatch.setenv("LOCKGATE_KEY", "lg_from_env")
    assert admin_key(gateway_args(tmp_path)) == "lg_from_env"
    assert admin_key(gateway_args(tmp_path, "--key", "lg_flag")) == "lg_flag"


def test_gateway_url_from_flag_env_then_layout(tmp_path, monkeypatch):
    assert gateway_url(gateway_args(tmp_path)) == "127.0.0.1:8080"
    monkeypatch.setenv("LOCKGATE_HTTP_PORT", "8181")
    assert gateway_url(gateway_args(tmp_path)) == "127.0.0.1:8181"
    monkeypatch.setenv("LOCKGATE_URL", "http://env:1")
    assert gateway_url(gateway_args(tmp_path)) == "http://env:1"
    assert gateway_url(gateway_args(tmp_path, "--url", "flag:2")) == "flag:2"


class FakeRpcError(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.PERMISSION_DENIED

    def details(self):
        return "key may not create keys"


def test_rpc_errors_become_one_line():
    message = describe_rpc_error(FakeRpcError())
    assert message.startswith("PERMISSION_DENIED: key may not create keys")
    assert "\n" not in message


def test_missing_admin_key_is_a_clean_error(tmp_path, capsys):
    code = main(["keys", "create", "--tenant", "default", "--name", "x",
                 "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("lockgate: no admin key") and "Traceback" not in err


def test_status_and_down_without_a_stack(tmp_path, capsys):
    assert main(["status", "--data-dir", str(tmp_path)]) == 3
    assert "not running" in capsys.readouterr().out
    assert main(["status", "--data-dir", str(tmp_path), "--json"]) == 3
    assert '"running": false' in capsys.readouterr().out
    assert main(["down", "--data-dir", str(tmp_path)]) == 0
    assert "not running" in capsys.readouterr().out


def test_up_rejects_bad_ports(tmp_path, capsys):
    assert main(["up", "--data-dir", str(tmp_path), "--port", "0"]) == 2
    assert "must be a TCP port" in capsys.readouterr().err


def test_up_refuses_a_missing_gateway_config(tmp_path, capsys):
    code = main(["up", "--detach", "--data-dir", str(tmp_path), "--config",
                 str(tmp_path / "nope.yaml")])
    assert code == 1
    assert "nope.yaml does not exist" in capsys.readouterr().err


def test_usage_row_and_table():
    entry = ledger_pb.UsageEntry(
        request_id="req-1", alias="demo", provider_model="sim-small",
        usage=common_pb2.TokenUsage(input_tokens=12, output_tokens=34), latency_ms=56,
        status="error", error_type="upstream_unavailable",
        create_time=Timestamp(seconds=1_700_000_000),
    )
    assert row(entry) == (
        "2023-11-14 22:13:20", "req-1", "demo", "sim-small", "12", "34", "56",
        "error (upstream_unavailable)",
    )
    table = format_table(("A", "LONGER"), [("xx", 1), ("y", "")])
    assert table.splitlines() == ["A   LONGER", "xx  1", "y"]
