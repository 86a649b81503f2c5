"""Remote mode: the same policies, evaluated by an OPA server.

`RemotePolicy` is an Evaluator (see lockgate/policy.py) that asks an Open
Policy Agent server instead of the embedded engine. Load the shipped
`policies/` into OPA (as a bundle, or with `opa run -s policies/`) and the
same `.rego` files decide, with the same entry points and inputs.

Decisions: OPA's Data API, `POST <url>/v1/data/<entry point>` with
`{"input": …}`; OPA answers `{"result": …}` (plus `decision_id` when its
decision logs are on), or `{}` when the rule is undefined for that input.
The call goes through opa-python-client's `AsyncOpaClient.query_rule` (aiohttp:
one connection pool per RemotePolicy, kept alive between calls).

Fail closed: a connection failure, no answer within `timeout` (the whole call,
connection included), an answer other than 200 with a JSON object, or an
undefined decision (no `result`) raises RemotePolicyError, a PolicyError: the
services already turn evaluation errors into denials (503 `policy_error` at
the edge, ServiceUnavailable for admin and routing calls) and do not cache them.

Revision (decision caches key on it): a hash of every policy module OPA holds
(`GET /v1/policies`: each module's `id` and `raw` text) and, when OPA's status
plugin is on, of every bundle's `active_revision` (`GET /v1/status`), the only
documented places where a change shows. Data pushed outside a bundle, or in a
bundle whose revision does not change, is not seen: ship data in bundles built
with a revision (`opa build --revision …`). A background task polls both every
`poll_interval` seconds (start()/close(), like LivePolicy's watcher), so a
change on the server reaches the caches within about one interval. While OPA
cannot be reached the last revision stays (cached decisions stay valid) and
`last_error` says why. opa-python-client cannot do these two reads: its
`get_policies_list` returns module ids without their text (an edited module
keeps its id), and its `get_status` raises on a 500 without OPA's message, so
"status plugin not enabled" cannot be told from a failure; they are made with
httpx.

`evaluate` (synchronous) is for worker threads: it hands the call to the event
loop the RemotePolicy was started on and waits. Called on an event loop it
raises RemotePolicyError instead of blocking it: await `evaluate_async` there.

The bearer token is sent as `Authorization: Bearer …` and is never logged nor
put in an error message (errors are raised without their aiohttp/httpx cause,
whose request details hold the header).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
import orjson
from opa_client import AsyncOpaClient

from lockgate.metrics import Counter
from lockgate.policy import PolicyError

log = logging.getLogger("lockgate.policy.remote")

ERRORS = Counter(
    "lockgate_remote_policy_errors_total",
    "Failed calls to the OPA server (evaluate: a decision; revision: a poll)",
    ["call"],
)

DEFAULT_TIMEOUT = 0.5
DEFAULT_POLL_INTERVAL = 1.0
#: Lower bound of a revision poll's timeout: the policy listing can be large.
MIN_POLL_TIMEOUT = 2.0

_ENTRYPOINT = re.compile(r"[A-Za-z_]\w*(?:/[A-Za-z_]\w*)*", re.ASCII)
# RFC 6750 b64token is narrower; this is what can travel in a header unharmed.
_TOKEN = re.compile(r"[\x21-\x7e]+")
_STATUS_OFF = "status plugin not enabled"  # OPA's 500 message (server.go, v1StatusGet)


class RemotePolicyError(PolicyError):
    """The OPA server gave no usable decision (or revision): treat as a denial."""


@dataclass(frozen=True, slots=True)
class RemoteDecision:
    """OPA's answer: the rule's value and, when OPA logs decisions, its decision id."""

    result: Any
    decision_id: str = ""


class RemotePolicy:
    """Policies evaluated by the OPA server at `url` (e.g. "http://opa:8181")."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        token: str | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ):
        """`url`: scheme, host and port only (OPA serves its API at /v1 of it).
        `timeout`: seconds for a whole decision call. `token`: OPA's bearer token
        (`opa run --authentication=token`). `poll_interval`: seconds between
        revision polls once started (0: only `refresh()` reads it).
        Raises ValueError for a URL with a path, query, fragment or credentials,
        a timeout that is not positive, or a token that cannot be a header value.
        """
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("OPA URL must be http:// or https:// with a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("OPA URL must not hold credentials: give the bearer token instead")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("OPA URL must be scheme://host[:port] only (OPA serves /v1 there)")
        if not timeout > 0:
            raise ValueError("OPA timeout must be positive")
        if not poll_interval >= 0:
            raise ValueError("OPA poll interval must be 0 or more")
        if token is not None and not _TOKEN.fullmatch(token):
            raise ValueError("OPA bearer token must be visible ASCII characters (not shown here)")
        self._https = parts.scheme == "https"
        self._port = parts.port or (443 if self._https else 80)
        host = parts.hostname
        self._host = f"[{host}]" if ":" in host else host
        #: Base URL, normalized (never holds the token).
        self.url = f"{parts.scheme}://{self._host}:{self._port}"
        self.timeout = float(timeout)
        self.poll_interval = float(poll_interval)
        self._token = token or None
        self._revision = ""
        #: Why the last revision poll failed ("" once one succeeds).
        self.last_error = ""
        #: When the revision was last read successfully (time.time()), 0 before.
        self.checked_at = 0.0
        self._status_api: bool | None = None  # None: not asked yet
        self._client: AsyncOpaClient | None = None
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._open_lock = asyncio.Lock()
        self._task: asyncio.Task | None = None

    def __repr__(self) -> str:
        return f"RemotePolicy({self.url!r}, revision={self._revision!r})"

    # -- the Evaluator surface ------------------------------------------------------

    @property
    def revision(self) -> str:
        """Hash of the server's policies and bundle revisions ("" before the first poll)."""
        return self._revision

    async def evaluate_async(self, entrypoint: str, input: Any) -> Any:
        """The value of `entrypoint` for this input, as OPA computes it.

        Raises RemotePolicyError when OPA cannot be reached in time, answers an
        error, or the decision is undefined; PolicyError (its base) when the
        entry point is malformed or the input is not a JSON document.
        """
        return (await self.query(entrypoint, input)).result

    def evaluate(self, entrypoint: str, input: Any) -> Any:
        """`evaluate_async`, from a thread that is not running an event loop.

        The call runs on the loop this policy was started on; called on an event
        loop this raises RemotePolicyError at once (it would block the loop).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            ERRORS.labels("evaluate").inc()
            raise RemotePolicyError(
                f"{entrypoint}: RemotePolicy.evaluate would block the event loop;"
                " await evaluate_async instead"
            )
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            ERRORS.labels("evaluate").inc()
            raise RemotePolicyError(f"{entrypoint}: RemotePolicy is not started on an event loop")
        future = asyncio.run_coroutine_threadsafe(self.evaluate_async(entrypoint, input), loop)
        try:
            return future.result(self.timeout + 1.0)
        except concurrent.futures.TimeoutError:
            future.cancel()
            ERRORS.labels("evaluate").inc()
            raise RemotePolicyError(
                f"{entrypoint}: no answer from OPA at {self.url} within {self.timeout:g} s"
            ) from None

    async def query(self, entrypoint: str, input: Any) -> RemoteDecision:
        """OPA's whole answer: the result and its decision id ("" when OPA logs none)."""
        if not _ENTRYPOINT.fullmatch(entrypoint):
            raise PolicyError(f"{entrypoint!r}: not an entry point (expected `package/path/rule`)")
        document = _json_document(input)
        try:
            body = await self._post(entrypoint, document)
        except RemotePolicyError:
            ERRORS.labels("evaluate").inc()
            raise
        if "result" not in body:
            ERRORS.labels("evaluate").inc()
            raise RemotePolicyError(
                f"{entrypoint}: undefined: OPA at {self.url} returned no result"
                " (is the policy loaded there?)"
            )
        decision_id = body.get("decision_id")
        return RemoteDecision(body["result"], decision_id if isinstance(decision_id, str) else "")

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Poll the revision in the background (call on the service's event loop)."""
        self._bind_loop()
        if self.poll_interval > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._poll(), name="remote-policy-revision"
            )

    async def close(self) -> None:
        """Stop polling and close the connections to OPA."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        client, self._client = self._client, None
        if client is not None:
            await client.close_connection()
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def refresh(self) -> bool:
        """Read the revision now; True when it is current (False: `last_error` says why)."""
        self._bind_loop()
        try:
            http = await self._http_client()
            policies, bundles = await asyncio.gather(
                self._policies(http), self._bundles(http), return_exceptions=True
            )
            for outcome in (policies, bundles):
                if isinstance(outcome, BaseException):
                    raise outcome
        except Exception as exc:  # noqa: BLE001 - a failed poll keeps the last revision
            error = self._describe(exc, "revision")
            ERRORS.labels("revision").inc()
            if error != self.last_error:
                log.warning("cannot read the remote policy revision; keeping the last one",
                            extra={"url": self.url, "error": error,
                                   "revision": self._revision})
            self.last_error = error
            return False
        digest = hashlib.sha256()
        for module_id, raw in sorted(policies):
            _hash(digest, "policy", module_id, raw)
        for name, revision in sorted(bundles.items()):
            _hash(digest, "bundle", name, revision)
        revision = digest.hexdigest()[:16]
        if revision != self._revision:
            log.info("remote policies changed", extra={
                "url": self.url, "revision": revision, "previous": self._revision,
                "modules": len(policies), "bundles": sorted(bundles)})
            self._revision = revision
        if self.last_error:
            log.info("remote policy revision readable again", extra={"url": self.url})
        self.last_error = ""
        self.checked_at = time.time()
        return True

    # -- internals ----------------------------------------------------------------------

    async def _poll(self) -> None:
        while True:
            await self.refresh()  # never raises: a failure keeps the last revision
            await asyncio.sleep(self.poll_interval)

    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is None or self._loop.is_closed():
            self._loop = loop
        elif self._loop is not loop:
            raise RemotePolicyError("RemotePolicy is already in use on another event loop")

    async def _opa(self) -> AsyncOpaClient:
        """The client (and its aiohttp session), opened on first use on this loop."""
        client = self._client
        if client is not None:
            return client
        self._bind_loop()
        async with self._open_lock:
            if self._client is None:
                client = AsyncOpaClient(
                    host=self._host, port=self._port, ssl=self._https, token=self._token,
                    retries=0,  # a retry with backoff would overrun the timeout
                    timeout=self.timeout,
                )
                await client.__aenter__()  # opens the session (keep-alive pool)
                self._client = client
            return self._client

    async def _http_client(self) -> httpx.AsyncClient:
        if self._http is None:
            async with self._open_lock:
                if self._http is None:
                    # Off the loop: loading the CA certificates takes ~20 ms.
                    self._http = await asyncio.to_thread(self._new_http_client)
        return self._http

    def _new_http_client(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        return httpx.AsyncClient(
            base_url=self.url, headers=headers, trust_env=False,
            timeout=httpx.Timeout(max(self.timeout, MIN_POLL_TIMEOUT)),
        )

    async def _post(self, entrypoint: str, document: Any) -> dict:
        client = await self._opa()
        try:
            async with asyncio.timeout(self.timeout):
                try:
                    body = await client.query_rule(document, entrypoint)
                except aiohttp.ServerDisconnectedError:
                    # A kept-alive connection the server (or a proxy) had closed:
                    # the evaluation is read-only, ask once more on a new one.
                    body = await client.query_rule(document, entrypoint)
        except Exception as exc:  # noqa: BLE001 - every failure is a denial
            raise RemotePolicyError(f"{entrypoint}: {self._describe(exc, 'evaluate')}") from None
        if not isinstance(body, dict):
            raise RemotePolicyError(f"{entrypoint}: OPA at {self.url} answered a non-object")
        return body

    async def _policies(self, http: httpx.AsyncClient) -> list[tuple[str, str]]:
        response = await http.get("/v1/policies")
        if response.status_code != 200:
            raise _HttpError(response.status_code, *_opa_error(response))
        result = _json(response).get("result")
        if not isinstance(result, list):
            raise ValueError("GET /v1/policies: no result list")
        modules = []
        for module in result:
            if not isinstance(module, dict) or not isinstance(module.get("id"), str):
                raise ValueError("GET /v1/policies: a module without an id")
            raw = module.get("raw")
            modules.append((module["id"], raw if isinstance(raw, str) else ""))
        return modules

    async def _bundles(self, http: httpx.AsyncClient) -> dict[str, str]:
        if self._status_api is False:
            return {}
        response = await http.get("/v1/status")
        if response.status_code == 200:
            result = _json(response).get("result")
            bundles = result.get("bundles") if isinstance(result, dict) else None
            self._status_api = True
            if not isinstance(bundles, dict):
                return {}
            return {
                str(name): str(status.get("active_revision", ""))
                for name, status in bundles.items() if isinstance(status, dict)
            }
        code, message = _opa_error(response)
        if response.status_code == 404 or _STATUS_OFF in message:
            # Status plugin off (OPA's default), or an OPA without the Status API.
            self._status_api = False
            log.info("OPA's status API is off: the policy revision follows its policy"
                     " modules only", extra={"url": self.url})
            return {}
        raise _HttpError(response.status_code, code, message)

    def _describe(self, exc: BaseException, call: str) -> str:
        """A log-safe account of a failed call (no headers, no token)."""
        if isinstance(exc, TimeoutError | httpx.TimeoutException):
            limit = self.timeout if call == "evaluate" else max(self.timeout, MIN_POLL_TIMEOUT)
            text = f"no answer from OPA at {self.url} within {limit:g} s"
        elif isinstance(exc, aiohttp.ContentTypeError):  # a 200 that is not JSON
            text = f"unusable answer from OPA at {self.url}: HTTP {exc.status}, not JSON"
        elif isinstance(exc, aiohttp.ClientResponseError):
            text = f"OPA at {self.url} answered HTTP {exc.status} {exc.message}"
        elif isinstance(exc, _HttpError):
            text = f"OPA at {self.url} answered HTTP {exc}"
        elif isinstance(exc, aiohttp.ClientError | httpx.TransportError | OSError):
            text = f"cannot reach OPA at {self.url}: {type(exc).__name__}: {exc}"
        else:
            text = f"unusable answer from OPA at {self.url}: {type(exc).__name__}: {exc}"
        if self._token:
            text = text.replace(self._token, "***")
        return text[:500]


class _HttpError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}" if code else f"{status} {message}")


def _opa_error(response: httpx.Response) -> tuple[str, str]:
    """OPA's error document `{"code": …, "message": …}`, or ("", reason)."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body.get("code") or ""), body["message"][:200]
    return "", response.reason_phrase


def _json(response: httpx.Response) -> dict:
    body = orjson.loads(response.content)
    if not isinstance(body, dict):
        raise ValueError(f"{response.request.url.path}: not a JSON object")
    return body


def _json_document(value: Any) -> Any:
    """`value` as plain JSON, as the embedded engine reads it (sets become sorted lists)."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, default=_json_default)
        text.encode()  # lone surrogates: not JSON text either
        return json.loads(text)
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise PolicyError(f"input is not a JSON document: {exc}") from None


def _json_default(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _hash(digest: Any, kind: str, name: str, text: str) -> None:
    body = text.encode()
    digest.update(f"{kind}\0{name}\0{len(body)}\0".encode())
    digest.update(body)
