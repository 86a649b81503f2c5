"""OpenAI-shaped errors of the simulator, and request-body checks that raise them."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

JSON_HEADERS = {"Content-Type": "application/json"}


class SimError(Exception):
    """An OpenAI-shaped error answer."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,  # noqa: A002 - OpenAI's field name
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or _error_type(status)
        self.param = param
        self.code = code
        self.headers = headers

    def response(self) -> web.Response:
        return error_response(
            self.status,
            self.message,
            type=self.type,
            param=self.param,
            code=self.code,
            headers=self.headers,
        )


def _error_type(status: int) -> str:
    if status == 429:
        return "requests"
    if status >= 500:
        return "server_error"
    if status == 403:
        return "permission_error"
    return "invalid_request_error"


def error_response(
    status: int,
    message: str,
    *,
    type: str | None = None,  # noqa: A002 - OpenAI's field name
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An OpenAI-shaped error response."""
    body = orjson.dumps(
        {
            "error": {
                "message": message,
                "type": type or _error_type(status),
                "param": param,
                "code": code,
            }
        }
    )
    hdrs = dict(JSON_HEADERS)
    if headers:
        hdrs.update(headers)
    return web.Response(status=status, body=body, headers=hdrs)


_INJECTED_MESSAGES = {
    400: "Simulated bad request.",
    401: "Simulated authentication failure.",
    403: "Simulated permission failure.",
    404: "Simulated not found.",
    408: "Simulated request timeout.",
    409: "Simulated conflict.",
    413: "Simulated payload too large.",
    422: "Simulated unprocessable request.",
    429: "Rate limit reached for requests (simulated).",
    500: "The server had an error while processing your request (simulated).",
    502: "Bad gateway (simulated).",
    503: "The server is overloaded or not ready yet (simulated).",
    504: "Gateway timeout (simulated).",
}
_INJECTED_CODES = {401: "invalid_api_key", 429: "rate_limit_exceeded"}


def injected(status: int) -> SimError:
    message = _INJECTED_MESSAGES.get(status, f"Simulated error (HTTP {status}).")
    headers = {"retry-after": "1"} if status == 429 else None
    return SimError(status, message, code=_INJECTED_CODES.get(status), headers=headers)


def invalid(message: str, param: str | None = None, code: str | None = None) -> SimError:
    return SimError(400, message, param=param, code=code)


def missing(param: str) -> SimError:
    """OpenAI's 400 for a required parameter left out."""
    return invalid(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


_JSON_HINT = (
    "We could not parse the JSON body of your request. (HINT: This likely means you "
    "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
    "but what was sent was not valid JSON.)"
)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def bad_type(param: str, expected: str, value: Any) -> SimError:
    article = "an" if expected[0] in "aeiou" else "a"
    return invalid(
        f"Invalid type for '{param}': expected {article} {expected}, but got "
        f"{_type_name(value)} instead.",
        param,
        "invalid_type",
    )


def int_param(body: dict, name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_type(name, "integer", value)
    if value < low:
        raise invalid(
            f"Invalid '{name}': integer below minimum value. Expected a value "
            f">= {low}, but got {value} instead.",
            name,
            "integer_below_min_value",
        )
    if value > high:
        raise invalid(
            f"Invalid '{name}': integer above maximum value. Expected a value "
            f"<= {high}, but got {value} instead.",
            name,
            "integer_above_max_value",
        )
    return value


async def read_json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()  # bounded by client_max_size (413)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid(_JSON_HINT) from None
    if not isinstance(body, dict):
        raise invalid("Invalid request body: expected a JSON object.")
    return body
