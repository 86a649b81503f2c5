"""One error hierarchy for every Lockgate service, mapped to statuses in one table.

    LockgateError                       500 INTERNAL            api_error
    ├── InvalidRequest                  400 INVALID_ARGUMENT    invalid_request_error
    │   └── PayloadTooLarge             413 INVALID_ARGUMENT    invalid_request_error
    ├── Unauthenticated                 401 UNAUTHENTICATED     authentication_error
    ├── PermissionDenied                403 PERMISSION_DENIED   permission_error
    ├── NotFound                        404 NOT_FOUND           not_found_error
    │   └── ModelNotFound               404 NOT_FOUND           not_found_error (code model_not_found)
    ├── FailedPrecondition              400 FAILED_PRECONDITION invalid_request_error
    ├── AlreadyExists                   409 ALREADY_EXISTS      invalid_request_error
    ├── Conflict                        409 ABORTED             invalid_request_error (stale etag)
    ├── RateLimited                     429 RESOURCE_EXHAUSTED  rate_limit_error
    │   └── RequestRateLimited          429 RESOURCE_EXHAUSTED  requests (OpenAI's type for RPM)
    ├── UpstreamError                   502 UNAVAILABLE         api_error   (provider failed)
    │   ├── UpstreamUnavailable         503 UNAVAILABLE         api_error   (provider unreachable)
    │   └── UpstreamTimeout             504 DEADLINE_EXCEEDED   api_error
    ├── ServiceUnavailable              503 UNAVAILABLE         api_error   (a Lockgate dependency)
    └── InternalError                   500 INTERNAL            api_error

Messages are user-facing: never put secrets, stack traces or reprs in them.
Anything that is not a LockgateError is reported as InternalError("internal error")
with the request id, by the boundary that catches it (gRPC interceptor, HTTP body).
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import orjson


@dataclass(frozen=True, slots=True)
class Status:
    http: int
    grpc: grpc.StatusCode
    openai_type: str


class LockgateError(Exception):
    """Base of every error a Lockgate service reports to a caller."""

    #: Machine-readable code (OpenAI's error.code), e.g. "model_not_found".
    default_code: str | None = None
    #: Seconds the caller should wait before retrying (sent as Retry-After),
    #: when known; set on rate limits and on upstream failures that carry one.
    retry_after: float | None = None
    #: Extra response headers for the caller (e.g. x-ratelimit-* on a 429).
    headers: tuple[tuple[str, str], ...] = ()

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code
        self.param = param

    @property
    def status(self) -> Status:
        return status_of(self)


class InvalidRequest(LockgateError):
    """The request is malformed or has invalid fields."""


class PayloadTooLarge(InvalidRequest):
    """The request body is over the configured limit."""

    default_code = "request_too_large"  # the code Envoy's 413 carries too


class Unauthenticated(LockgateError):
    """No credential, or one that is unknown, revoked or expired."""

    default_code = "invalid_api_key"


class PermissionDenied(LockgateError):
    """The caller is known but policy denies the action."""


class NotFound(LockgateError):
    """The object does not exist or is not visible to the caller."""


class ModelNotFound(NotFound):
    """The model alias is not configured."""

    default_code = "model_not_found"


class FailedPrecondition(LockgateError):
    """The object is not in a state that allows the action (a team still has members)."""

    default_code = "failed_precondition"


class AlreadyExists(LockgateError):
    """An object with the same unique name exists."""


class Conflict(LockgateError):
    """The object changed since the caller read it (the etag no longer matches)."""

    default_code = "etag_mismatch"


class RateLimited(LockgateError):
    """A rate limit or budget blocks the call."""

    default_code = "rate_limit_exceeded"


class RequestRateLimited(RateLimited):
    """A requests-per-minute limit blocks the call (OpenAI reports these with type
    "requests", which clients may tell apart from token limits)."""


class UpstreamError(LockgateError):
    """The provider answered with an error."""

    default_code = "upstream_error"


class UpstreamUnavailable(UpstreamError):
    """The provider could not be reached or is overloaded."""

    default_code = "upstream_unavailable"


class UpstreamTimeout(UpstreamError):
    """The provider did not answer in time."""

    default_code = "upstream_timeout"


class ServiceUnavailable(LockgateError):
    """A Lockgate dependency (database, another service) is unavailable."""

    default_code = "service_unavailable"


class InternalError(LockgateError):
    """A bug: reported without details; the logs have them, keyed by request id."""

    default_code = "internal_error"


# The one table, with a row for every class (a unit test checks it is
# exhaustive). Lookup walks the MRO, so foreign subclasses still map.
_STATUS_TABLE: dict[type[LockgateError], Status] = {
    LockgateError: Status(500, grpc.StatusCode.INTERNAL, "api_error"),
    InvalidRequest: Status(400, grpc.StatusCode.INVALID_ARGUMENT, "invalid_request_error"),
    PayloadTooLarge: Status(413, grpc.StatusCode.INVALID_ARGUMENT, "invalid_request_error"),
    Unauthenticated: Status(401, grpc.StatusCode.UNAUTHENTICATED, "authentication_error"),
    PermissionDenied: Status(403, grpc.StatusCode.PERMISSION_DENIED, "permission_error"),
    NotFound: Status(404, grpc.StatusCode.NOT_FOUND, "not_found_error"),
    ModelNotFound: Status(404, grpc.StatusCode.NOT_FOUND, "not_found_error"),
    FailedPrecondition: Status(
        400, grpc.StatusCode.FAILED_PRECONDITION, "invalid_request_error"
    ),
    AlreadyExists: Status(409, grpc.StatusCode.ALREADY_EXISTS, "invalid_request_error"),
    Conflict: Status(409, grpc.StatusCode.ABORTED, "invalid_request_error"),
    RateLimited: Status(429, grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limit_error"),
    RequestRateLimited: Status(429, grpc.StatusCode.RESOURCE_EXHAUSTED, "requests"),
    UpstreamError: Status(502, grpc.StatusCode.UNAVAILABLE, "api_error"),
    UpstreamUnavailable: Status(503, grpc.StatusCode.UNAVAILABLE, "api_error"),
    UpstreamTimeout: Status(504, grpc.StatusCode.DEADLINE_EXCEEDED, "api_error"),
    ServiceUnavailable: Status(503, grpc.StatusCode.UNAVAILABLE, "api_error"),
    InternalError: Status(500, grpc.StatusCode.INTERNAL, "api_error"),
}

def status_of(exc: BaseException) -> Status:
    """The status row for an exception; non-Lockgate exceptions are internal errors."""
    for cls in type(exc).__mro__:
        row = _STATUS_TABLE.get(cls)  # type: ignore[arg-type]
        if row is not None:
            return row
    return _STATUS_TABLE[InternalError]


def as_lockgate_error(exc: BaseException, request_id: str | None = None) -> LockgateError:
    """The error to show a caller: Lockgate errors as they are, anything else opaque."""
    if isinstance(exc, LockgateError):
        return exc
    suffix = f" (request id {request_id})" if request_id else ""
    return InternalError(f"internal error{suffix}")


def openai_error_body(exc: LockgateError) -> bytes:
    """OpenAI's error JSON: {"error": {"message", "type", "param", "code"}}."""
    return orjson.dumps(
        {
            "error": {
                "message": exc.message,
                "type": exc.status.openai_type,
                "param": exc.param,
                "code": exc.code,
            }
        }
    )
