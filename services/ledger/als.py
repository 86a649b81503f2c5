"""Envoy's gRPC access log service (envoy.service.accesslog.v3) in the ledger:
every call through the edge becomes a call record (services/ledger/call_log_writer.py
stores them in batches).

Envoy keeps one stream open and sends batches of HTTPAccessLogEntry. The
servicer converts each message's entries and hands them to the writer's bounded
queue at once; when the queue is full it stops reading the stream until there
is room. HTTP/2 flow
control then pushes back on Envoy, which buffers entries and, once its buffer
is full, drops them (counted in Envoy's `access_logs.grpc_access_log.logs_dropped`
stat). The call log is best-effort evidence; usage entries (billing) never go
this way.

The tenant and key come from the identity headers auth adds to allowed
requests (`additional_request_headers_to_log`); Envoy removes client-sent
copies of those two headers before any filter runs (envoy/envoy.yaml.tmpl), so
a denied request is logged with no tenant and no tenant ever sees it.

Calls the router checks itself (auth hosted in its process,
services/router/access.py) carry them instead in the call's metadata, which
only the router's responses can set (lockgate/edge_access.py). Its denials
are logged as Envoy logs those of its own access check: flag UAEX, no
upstream, so the call log reads the same in every process layout.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from envoy.config.core.v3 import base_pb2
from envoy.data.accesslog.v3 import accesslog_pb2 as log_pb
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc

from lockgate.edge_access import DENIED_HEADER, LOG_HEADERS, METADATA_NAMESPACE
from lockgate.identity import KEY_ID, TENANT_ID
from lockgate.metrics import Counter
from lockgate.redact import redact_query
from lockgate.timestamps import from_timestamp
from services.ledger.call_log_writer import CallLogWriter

log = logging.getLogger("lockgate.ledger.als")

SERVICE_NAME = als_pb2.DESCRIPTOR.services_by_name["AccessLogService"].full_name
#: The request headers Envoy is configured to log (envoy/envoy.yaml.tmpl).
LOGGED_HEADERS = (TENANT_ID, KEY_ID)
ORIGINAL_PATH = "x-envoy-original-path"

ENTRIES_RECEIVED = Counter(
    "lockgate_ledger_access_log_entries_total", "HTTP access log entries received from Envoy"
)

#: ResponseFlags field -> Envoy's short name (as %RESPONSE_FLAGS% prints it), in
#: the proto's field order.
RESPONSE_FLAGS = (
    ("failed_local_healthcheck", "LH"),
    ("no_healthy_upstream", "UH"),
    ("upstream_request_timeout", "UT"),
    ("local_reset", "LR"),
    ("upstream_remote_reset", "UR"),
    ("upstream_connection_failure", "UF"),
    ("upstream_connection_termination", "UC"),
    ("upstream_overflow", "UO"),
    ("no_route_found", "NR"),
    ("delay_injected", "DI"),
    ("fault_injected", "FI"),
    ("rate_limited", "RL"),
    ("unauthorized_details", "UAEX"),
    ("rate_limit_service_error", "RLSE"),
    ("downstream_connection_termination", "DC"),
    ("upstream_retry_limit_exceeded", "URX"),
    ("stream_idle_timeout", "SI"),
    ("invalid_envoy_request_headers", "IH"),
    ("downstream_protocol_error", "DPE"),
    ("upstream_max_stream_duration_reached", "UMSDR"),
    ("response_from_cache_filter", "RFCF"),
    ("no_filter_config_found", "NFCF"),
    ("duration_timeout", "DT"),
    ("upstream_protocol_error", "UPE"),
    ("no_cluster_found", "NC"),
    ("overload_manager", "OM"),
    ("dns_resolution_failure", "DF"),
    ("downstream_remote_reset", "DR"),
)

# Column bounds (services/ledger/models.py CallLogRecord).
_MAX = {"request_id": 128, "tenant_id": 64, "key_id": 64, "http_method": 16, "path": 1024,
        "response_flags": 128, "upstream_cluster": 128, "upstream_host": 256}


_SHORT_NAME = dict(RESPONSE_FLAGS)


def response_flags(flags: log_pb.ResponseFlags) -> str:
    """Envoy's short flag names, comma-separated ("" when none is set)."""
    # ListFields holds only the flags that are set (usually none), in field order.
    return ",".join(_SHORT_NAME[field.name] for field, _ in flags.ListFields()
                    if field.name in _SHORT_NAME)


def _millis(duration) -> int:
    return duration.seconds * 1000 + duration.nanos // 1_000_000


def _address(address) -> str:
    socket = address.socket_address
    if not socket.address:
        return ""
    port = socket.port_value
    return f"{socket.address}:{port}" if port else socket.address


_TENANT_KEY, _KEY_KEY, _DENIED_KEY = (LOG_HEADERS[h] for h in (TENANT_ID, KEY_ID, DENIED_HEADER))


def _identity(common: log_pb.AccessLogCommon, headers) -> tuple[str, str, bool]:
    """(tenant id, key id, denied by the router's access check) of a call."""
    filter_metadata = common.metadata.filter_metadata
    if METADATA_NAMESPACE in filter_metadata:
        fields = filter_metadata[METADATA_NAMESPACE].fields
        tenant = fields[_TENANT_KEY].string_value if _TENANT_KEY in fields else ""
        key = fields[_KEY_KEY].string_value if _KEY_KEY in fields else ""
        return tenant, key, _DENIED_KEY in fields
    return headers.get(TENANT_ID, ""), headers.get(KEY_ID, ""), False


#: RequestMethod value -> its name; unknown and unspecified methods log as "".
_METHOD_NAMES = {value: name for name, value in base_pb2.RequestMethod.items()
                 if value != base_pb2.METHOD_UNSPECIFIED}


def call_record(entry: log_pb.HTTPAccessLogEntry, received: datetime | None = None) -> dict:
    """One HTTP access log entry -> a call_log row (bounded to the column sizes).

    Runs once per call through the edge, on the ledger's event loop: fields are
    read once each."""
    common, request, response = entry.common_properties, entry.request, entry.response
    headers = request.request_headers
    if common.HasField("start_time"):
        start = from_timestamp(common.start_time)
    else:
        start = received or datetime.now(UTC)
    if common.HasField("duration"):
        duration = _millis(common.duration)
    elif common.HasField("time_to_last_downstream_tx_byte"):
        duration = _millis(common.time_to_last_downstream_tx_byte)
    else:
        duration = 0
    # The transcoder rewrites REST paths to gRPC methods: log what the client sent.
    path = request.original_path or headers.get(ORIGINAL_PATH, "") or request.path
    tenant_id, key_id, denied = _identity(common, headers)
    flags = response_flags(common.response_flags)
    row = {
        "request_id": request.request_id,
        "tenant_id": tenant_id,
        "key_id": key_id,
        "start_time": start,
        "http_method": _METHOD_NAMES.get(request.request_method, ""),
        "path": redact_query(path, max_length=_MAX["path"]),
        "response_code": response.response_code.value,
        "response_flags": ",".join(filter(None, (flags, "UAEX"))) if denied else flags,
        "duration_ms": duration,
        "request_bytes": request.request_body_bytes,
        "response_bytes": response.response_body_bytes,
        "upstream_cluster": "" if denied else common.upstream_cluster,
        "upstream_host": "" if denied else _address(common.upstream_remote_address),
    }
    for name, bound in _MAX.items():
        if len(row[name]) > bound:
            row[name] = row[name][:bound]
    return row


class AccessLogServicer(als_pb2_grpc.AccessLogServiceServicer):
    def __init__(self, writer: CallLogWriter):
        self.writer = writer

    async def StreamAccessLogs(self, request_iterator, context) -> als_pb2.StreamAccessLogsResponse:
        async for message in request_iterator:
            received = datetime.now(UTC)
            entries = message.http_logs.log_entry
            ENTRIES_RECEIVED.inc(len(entries))
            records = []
            for entry in entries:
                try:
                    records.append(call_record(entry, received))
                except Exception:  # noqa: BLE001 - one odd entry must not end the stream
                    log.exception("access log entry could not be read; skipped")
            # Waits while the queue is full: the stream is not read meanwhile.
            await self.writer.put_many(records)
        return als_pb2.StreamAccessLogsResponse()


def add_to_server(writer: CallLogWriter, server) -> list[str]:
    """Register the access log service; returns its full name."""
    als_pb2_grpc.add_AccessLogServiceServicer_to_server(AccessLogServicer(writer), server)
    return [SERVICE_NAME]
