"""A fake OPA server: OPA's REST answers, decided by the embedded engine.

No OPA binary runs here, so this aiohttp app (loopback, port 0) replays the
responses documented in OPA's REST API reference (open-policy-agent/opa,
docs/docs/rest-api.md; https://www.openpolicyagent.org/docs/rest-api), and
decides with `PolicyEngine` loaded from the same policy folder: the same
.rego files decide in-process and "remotely".

* Data API, "Get a Document (with Input)": `POST /v1/data/{path}` with
  `{"input": …}` → 200 `{"result": …}`; 200 `{}` when the document is
  undefined ("the response will not contain a `result` property"); with
  decision logging on, `"decision_id"` besides. Input that is not JSON →
  400 `{"code": "invalid_parameter", "message": …}`; an evaluation error →
  500 `{"code": "internal_error", "message": …}` ("Errors": a JSON object with
  `code`, `message`, optional `errors`). A body without `input` adds
  `"warning": {"code": "api_usage_warning", …}` as OPA's v1DataPost does.
* Policy API, "List Policies": `GET /v1/policies` → `{"result": [{"id", "raw",
  "ast"}, …]}`; ids are paths relative to the policy folder, as `opa run -s`
  names files; `ast` is abbreviated to the package path.
* Status API: `GET /v1/status` → `{"result": {"labels", "bundles": {name:
  {"name", "active_revision", …}}, "plugins"}}`; with the status plugin off
  (OPA's default), 500 `{"code": "internal_error", "message": "status plugin
  not enabled"}` (server.go, v1StatusGet).
* Authentication (`--authentication=token`): `Authorization: Bearer <token>`;
  a missing or wrong token → 401 `{"code": "unauthorized", "message": "request
  rejected by administrative policy"}`.

Knobs for tests: `delay` (seconds before a data answer), `fail` (status and
body for every data answer), `undefined` (answer `{}`), `load()` (new policy
folder), `bundle` / `bundle_revision` (status plugin on, with that bundle),
and `requests` (what was asked, with headers and client address).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from lockgate.policy import DEFAULT_ROOT, TEST_SUFFIX, PolicyEngine, PolicyError

INVALID_PARAMETER = {
    "code": "invalid_parameter",
    "message": "body contains malformed input document: invalid character 'x' looking for"
               " beginning of value",
}
INTERNAL_ERROR = {
    "code": "internal_error",
    "message": "eval_conflict_error: complete rules must not produce multiple outputs",
}
UNAUTHORIZED = {"code": "unauthorized", "message": "request rejected by administrative policy"}
STATUS_OFF = {"code": "internal_error", "message": "status plugin not enabled"}
INPUT_MISSING = {"code": "api_usage_warning", "message": "'input' key missing from the request"}

_PACKAGE = re.compile(r"^package[ \t]+([A-Za-z_][\w.]*)", re.MULTILINE)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    peer: Any
    body: Any = field(default=None)


class FakeOpa:
    def __init__(
        self,
        root: str | Path | None = None,
        *,
        token: str | None = None,
        decision_logs: bool = False,
        bundle: str | None = None,
    ):
        self.token = token
        self.decision_logs = decision_logs
        #: Name of the bundle the status plugin reports; None: status plugin off.
        self.bundle = bundle
        #: The bundle's `active_revision` (default: the engine's revision, as if
        #: the bundle were built with `opa build --revision`).
        self.bundle_revision: str | None = None
        self.delay = 0.0
        self.fail: tuple[int, dict | str] | None = None
        self.undefined = False
        self.requests: list[Request] = []
        self.load(root if root is not None else DEFAULT_ROOT)
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    def load(self, root: str | Path) -> None:
        """Serve the policies and data of `root` from now on (as a bundle activation)."""
        self.root = Path(root)
        self.engine = PolicyEngine(self.root)
        self.modules = {
            path.relative_to(self.root).as_posix(): path.read_text(encoding="utf-8")
            for path in sorted(self.root.rglob("*.rego"))
            if not path.name.endswith(TEST_SUFFIX)
            and not any(p.startswith(".") for p in path.relative_to(self.root).parts)
        }

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/data/{path:.+}", self.data)
        app.router.add_get("/v1/policies", self.policies)
        app.router.add_get("/v1/status", self.status)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self.url

    async def stop(self) -> None:
        self._stopping.set()  # slow answers end now
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- handlers ------------------------------------------------------------------

    def _record(self, request: web.Request, body: Any = None) -> None:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.requests.append(Request(request.method, request.path, dict(request.headers), peer,
                                     body))

    def _authorized(self, request: web.Request) -> bool:
        return self.token is None or request.headers.get("Authorization") == f"Bearer {self.token}"

    async def data(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError as exc:
            self._record(request)
            return _json({"code": "invalid_parameter",
                          "message": f"body contains malformed input document: {exc}"}, 400)
        self._record(request, body)
        if not self._authorized(request):
            return _json(UNAUTHORIZED, 401)
        if self.delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.delay)
        if self.fail is not None:
            status, fail_body = self.fail
            if isinstance(fail_body, str):  # e.g. a proxy's HTML error page
                return web.Response(text=fail_body, status=status, content_type="text/html")
            return _json(fail_body, status)
        if not isinstance(body, dict):
            return _json({"code": "invalid_parameter",
                          "message": "body contains malformed input document"}, 400)
        answer: dict[str, Any] = {}
        if self.decision_logs:
            answer["decision_id"] = str(uuid.uuid4())
        if "input" not in body:
            answer["warning"] = INPUT_MISSING
        try:
            result = self.engine.evaluate(request.match_info["path"], body.get("input"))
        except PolicyError as exc:
            return _json({"code": "internal_error", "message": str(exc)}, 500)
        if result is not None and not self.undefined:
            answer["result"] = result
        return _json(answer)

    async def policies(self, request: web.Request) -> web.Response:
        self._record(request)
        if not self._authorized(request):
            return _json(UNAUTHORIZED, 401)
        return _json({"result": [
            {"id": name, "raw": raw, "ast": _ast(raw)} for name, raw in self.modules.items()
        ]})

    async def status(self, request: web.Request) -> web.Response:
        self._record(request)
        if not self._authorized(request):
            return _json(UNAUTHORIZED, 401)
        if self.bundle is None:
            return _json(STATUS_OFF, 500)
        revision = self.bundle_revision
        if revision is None:
            revision = self.engine.revision
        stamp = "2026-01-01T00:00:00.000000Z"
        return _json({"result": {
            "labels": {"id": "7da62ac6-42e0-4b3c-b6d5-199239ad436e", "version": "1.4.0"},
            "bundles": {self.bundle: {
                "name": self.bundle, "active_revision": revision,
                "last_successful_activation": stamp, "last_successful_download": stamp,
                "last_successful_request": stamp, "last_request": stamp,
                "metrics": {"timer_bundle_request_ns": 1000},
            }},
            "plugins": {"bundle": {"state": "OK"}, "status": {"state": "OK"}},
        }})


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _ast(raw: str) -> dict:
    found = _PACKAGE.search(raw)
    parts = found.group(1).split(".") if found else []
    return {"package": {"path": [{"type": "var", "value": "data"}]
                        + [{"type": "string", "value": p} for p in parts]}}
