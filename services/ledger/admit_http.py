"""LedgerService/Admit (and ReturnTickets) over keep-alive HTTP/1.1, for the
router's hot path.

The router asks Admit before every call of a caller with a budget or a token
limit. Over grpc.aio that call cost the ledger more CPU than the admission
itself (lockgate/lean_http.py says why), so the router sends the same
protobuf messages over plain HTTP/1.1 instead:

    POST /lockgate.ledger.v1.LedgerService/Admit
    content-type: application/x-protobuf
    <AdmitRequest>            ->  200 <AdmitResponse> (application/x-protobuf)

and ReturnTickets the same way (ReturnTicketsRequest -> ReturnTicketsResponse).
A body that is not the path's request message, or a request the gate refuses
as invalid, answers 400 with the reason as text; any other path 404. The gRPC
methods stay for other clients; both transports run `budgets_servicer`'s
`admit` and `return_tickets`.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from lockgate.errors import LockgateError
from lockgate.lean_http import HttpRequest, LeanHttpServer, response
from lockgate.ledger.v1 import ledger_service_pb2 as pb
from lockgate.ledger_admit_http import CONTENT_TYPE, PATH, RETURN_TICKETS_PATH
from services.ledger.admission import Gate
from services.ledger.budgets_servicer import admit, return_tickets

#: An AdmitRequest is a few ids and numbers; a ReturnTicketsRequest at most
#: a thousand ticket ids.
MAX_BODY_BYTES = 64 * 1024


def _text(status: int, message: str) -> bytes:
    return response(status, [("content-type", "text/plain")], message.encode())


#: path -> (request message, how errors name it, what answers it, method name
#: for metrics)
_METHODS = {
    PATH: (pb.AdmitRequest, "an AdmitRequest", admit, "Admit"),
    RETURN_TICKETS_PATH: (pb.ReturnTicketsRequest, "a ReturnTicketsRequest", return_tickets,
                          "ReturnTickets"),
}


def admit_server(gate: Gate, host: str, port: int) -> LeanHttpServer:
    async def answer(request: HttpRequest) -> bytes:
        method = _METHODS.get(request.path)
        if method is None:
            return _text(404, f"unknown path {request.path[:200]}")
        message_type, named, call, _ = method
        if request.method != "POST":
            return _text(405, f"POST {named}")
        try:
            message = message_type.FromString(request.body)
        except DecodeError:
            return _text(400, f"the body is not {named}")
        try:
            reply = await call(gate, message)
        except LockgateError as exc:
            return _text(exc.status.http, exc.message)
        return response(200, [("content-type", CONTENT_TYPE)], reply.SerializeToString())

    return LeanHttpServer("ledger", answer, host, port, MAX_BODY_BYTES,
                          methods={path: m[3] for path, m in _METHODS.items()})
