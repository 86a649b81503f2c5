"""How a call through the lean upstream client (lockgate/upstream_client.py) can
fail, besides TimeoutError (a deadline) and ConnectionError (closed mid-answer);
services/router/providers/http.py maps each to the gateway's errors.

- `RefusedRequest`: nothing was sent (a URL or header the client will not write);
- `UpstreamConnectError`: nothing reached the provider (refused, DNS, TLS);
- `ResponseTooLarge`: the answer passed the caller's bound;
- `BadResponse`: the answer is not HTTP/1.1 the client can read.
"""

from __future__ import annotations


class UpstreamConnectError(OSError):
    """The provider could not be reached (refused, no route, DNS, TLS handshake)."""


class ResponseTooLarge(Exception):
    """The answer is larger than the caller's bound."""


class BadResponse(Exception):
    """The answer is not HTTP/1.1 this client can read."""


class RefusedRequest(ValueError):
    """The request was not sent: a URL or header this client will not put on the wire."""
