"""The HTTP/1.1 binding of LedgerService/Admit, shared by the ledger (server,
services/ledger/admit_http.py) and the router (client, services/router/admission.py):
the same protobuf messages, POSTed as `application/x-protobuf`."""

PATH = "/lockgate.ledger.v1.LedgerService/Admit"
CONTENT_TYPE = "application/x-protobuf"
