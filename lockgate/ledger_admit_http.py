"""The HTTP/1.1 binding of LedgerService/Admit and ReturnTickets, shared by the
ledger (server, services/ledger/admit_http.py) and the router (client,
services/router/admission.py): the same protobuf messages, POSTed as
`application/x-protobuf`."""

PATH = "/lockgate.ledger.v1.LedgerService/Admit"
RETURN_TICKETS_PATH = "/lockgate.ledger.v1.LedgerService/ReturnTickets"
CONTENT_TYPE = "application/x-protobuf"
