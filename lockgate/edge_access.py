"""How the access check at the edge behaves, wherever it runs.

The same decision (auth's `Checker.decide`) runs in one of two places:

- behind Envoy's ext_authz filter, in auth's HTTP access check
  (services/auth/check_http.py): every route of a layout where auth has a
  process of its own, and the gRPC and transcoded routes of every layout;
- in the router's process, for the three hot REST calls, when auth is hosted
  there too (services/router/access.py): one hop fewer per call
  (docs/performance.md, "The access check in the router's process").

A client cannot tell which one decided: both fail closed the same way and give
the same answer when no decision can be had. The values both share are here,
where Envoy's config (lockgate/stack/envoy_config.py) and the router read them.
"""

from __future__ import annotations

from lockgate.identity import KEY_ID, TENANT_ID

#: Longest wait for a decision; past it the call is answered 503 (fail closed).
TIMEOUT_SECONDS = 2.0
#: The answer when no decision can be had (auth unreachable or timing out, a
#: policy engine failure, governance not loaded yet), as the OpenAI error shape.
UNAVAILABLE_STATUS = 503
UNAVAILABLE_CODE = "access_check_unavailable"
UNAVAILABLE_MESSAGE = "the gateway cannot decide access right now; retry shortly"

# What the router's check tells Envoy's access log, in response headers that
# Envoy moves into the call's dynamic metadata (namespace below) and removes
# before the client sees them (envoy/envoy.yaml.tmpl, header_to_metadata). The
# ledger's call log reads them there (services/ledger/als.py) as it reads the
# identity headers ext_authz adds to the request in the other layout.
METADATA_NAMESPACE = "lockgate.access"
#: Present on a denial (any value): logged as Envoy logs its own (flag UAEX).
DENIED_HEADER = "x-lockgate-access-denied"
#: Response header -> metadata key.
LOG_HEADERS = {TENANT_ID: "tenant_id", KEY_ID: "key_id", DENIED_HEADER: "denied"}
