"""The one error table, and secret redaction in JSON logs."""

from __future__ import annotations

import io
import json
import logging

import grpc
import orjson
import pytest

from lockgate import errors
from lockgate.logs import JsonFormatter, redact, request_id_var


@pytest.mark.parametrize(
    ("error", "http", "code", "openai_type"),
    [
        (errors.InvalidRequest("x"), 400, grpc.StatusCode.INVALID_ARGUMENT, "invalid_request_error"),
        (errors.PayloadTooLarge("x"), 413, grpc.StatusCode.INVALID_ARGUMENT, "invalid_request_error"),
        (errors.Unauthenticated("x"), 401, grpc.StatusCode.UNAUTHENTICATED, "authentication_error"),
        (errors.PermissionDenied("x"), 403, grpc.StatusCode.PERMISSION_DENIED, "permission_error"),
        (errors.ModelNotFound("x"), 404, grpc.StatusCode.NOT_FOUND, "not_found_error"),
        (errors.AlreadyExists("x"), 409, grpc.StatusCode.ALREADY_EXISTS, "invalid_request_error"),
        (errors.Conflict("x"), 409, grpc.StatusCode.ABORTED, "invalid_request_error"),
        (errors.FailedPrecondition("x"), 400, grpc.StatusCode.FAILED_PRECONDITION,
         "invalid_request_error"),
        (errors.RateLimited("x"), 429, grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limit_error"),
        (errors.RequestRateLimited("x"), 429, grpc.StatusCode.RESOURCE_EXHAUSTED, "requests"),
        (errors.UpstreamError("x"), 502, grpc.StatusCode.UNAVAILABLE, "api_error"),
        (errors.UpstreamUnavailable("x"), 503, grpc.StatusCode.UNAVAILABLE, "api_error"),
        (errors.UpstreamTimeout("x"), 504, grpc.StatusCode.DEADLINE_EXCEEDED, "api_error"),
        (errors.ServiceUnavailable("x"), 503, grpc.StatusCode.UNAVAILABLE, "api_error"),
        (errors.InternalError("x"), 500, grpc.StatusCode.INTERNAL, "api_error"),
        (ValueError("boom"), 500, grpc.StatusCode.INTERNAL, "api_error"),
    ],
)
def test_status_table(error, http, code, openai_type):
    status = errors.status_of(error)
    assert (status.http, status.grpc, status.openai_type) == (http, code, openai_type)


def test_every_error_class_has_a_row():
    """Every class of the hierarchy has its own row; subclasses defined elsewhere
    (services' specific errors) map through their base, as status_of walks the MRO."""

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    for cls in subclasses(errors.LockgateError):
        if cls.__module__ == errors.__name__:
            assert cls in errors._STATUS_TABLE, cls
        else:
            mapped = next(base for base in cls.__mro__ if base in errors._STATUS_TABLE)
            assert mapped is not errors.LockgateError, cls


def test_unknown_exceptions_become_opaque_internal_errors():
    shown = errors.as_lockgate_error(KeyError("secret detail"), "req-9")
    assert isinstance(shown, errors.InternalError)
    assert shown.message == "internal error (request id req-9)"
    body = orjson.loads(errors.openai_error_body(errors.ModelNotFound("nope", param="model")))
    assert body == {"error": {"message": "nope", "type": "not_found_error", "param": "model",
                              "code": "model_not_found"}}


@pytest.mark.parametrize(
    "secret",
    [
        "lg_AbCdEfGh_0123456789abcdefghijABCDEFGHIJ",
        "sk-proj-abcdefghijklmnop1234",
        "sk-ant-api03-abcdefghijklmnop",
        "Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig",
    ],
)
def test_redaction(secret):
    assert secret not in redact(f"failed with {secret} in it")
    assert "[REDACTED]" in redact(f"failed with {secret} in it")


def test_json_log_lines_carry_request_id_and_never_secrets():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    logger = logging.getLogger("lockgate.test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    token = request_id_var.set("req-1")
    try:
        logger.warning("key %s rejected", "lg_AbCdEfGh_0123456789abcdefghijABCDEFGHIJ",
                       extra={"api_key": "sk-live-123456789012"})
    finally:
        request_id_var.reset(token)
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["request_id"] == "req-1" and line["service"] == "test"
    assert "lg_AbCd" not in stream.getvalue() and "sk-live" not in stream.getvalue()
