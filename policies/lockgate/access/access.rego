# Gateway access: may this request pass the edge?
#
# Asked by the auth service's Envoy ext_authz Check for every request, through
# the embedded engine (lockgate/policy.py): entry point `lockgate/access/decision`.
#
# Input document (every field is always present; the policy still denies when
# one is missing or has the wrong type):
#
#   {
#     "principal": {                       # null when no valid key was presented
#       "key_id": "key_…",                 # "" for a user's JWT
#       "tenant_id": "ten_…", "tenant_name": "default",
#       "team_id": "team_…",               # "" for tenant-wide keys
#       "kind": "service_account", "id": "sa_…",   # who holds the key (or "user", "usr_…")
#       "roles": ["platform_admin", …],    # effective roles; see services/auth/roles.py
#       "models": [],                      # [] = every model; else the only models allowed
#       "scopes": [],                      # [] = every API; else inference/admin/registry/usage
#       "status": "active"                 # or "revoked", "expired", "disabled" (owner)
#     },
#     "request": {
#       "method": "/lockgate.router.v1.RouterService/OpenAIChatCompletions",  # always the gRPC method
#       "http_method": "POST",
#       "path": "/v1/chat/completions",    # the original (REST or gRPC) path
#       "model": "demo"                    # "" when the method takes no model
#     },
#     "api": null | {                      # the registry's API version bound to request.model
#       "id": "api_…", "name": "support", "tenant_id": "ten_…", "owner_team_id": "team_…",
#       "version": "v1", "state": "published" | "deprecated" | "retired", "successor": "v2"
#     },
#     "subscription": {"approved": true},  # the caller's team holds an approved subscription
#     "governance": {"ready": true},       # the registry's view has been loaded
#     "credential": {                      # a key or JWT was presented, valid or not
#       "present": true,
#       "error": ""                        # why a JWT was refused ("token expired", …), else ""
#     }
#   }
#
# Data (data.json beside this file, mounted at data.lockgate.access; keyed
# objects, so every check is a lookup, never a scan):
#
#   internal_methods:  {"/pkg.Service/Method": true}  never callable from outside
#   internal_services: {"pkg.Service": true}          no method of it is callable from outside
#   platform_services: {"pkg.Service": true}          needs the platform_admin role (gateway-wide
#                                                     operations, not tenant data)
#   method_roles:      {"/pkg.Service/Method": ["tenant_admin", …]}  needs one of these roles
#                                                     (the service still scopes the call,
#                                                     e.g. a team admin to their own team)
#   service_scopes:    {"pkg.Service": "inference"}   the key scope a service needs
#
# The admin API (AuthService) is open to every role here: its own policy,
# lockgate/admin, decides each call (RBAC and tenant scoping).
#
# Output: decision = {"allow": bool, "status": 200|401|403, "code": str, "reason": str}.
# The first matching denial wins; anything not explicitly allowed is denied.
# Reasons are shown to clients: never put a key, a secret or another tenant's
# data in them. Build them with concat: rego-cpp 1.5.2's sprintf("%s") quotes
# strings made by other built-ins, which breaks the JSON result.
package lockgate.access

# METADATA
# title: Access decision
# description: >-
#   The edge decision for one request. Input: {principal: null or
#   {key_id, tenant_id, tenant_name, roles, models, status},
#   request: {method, http_method, path, model}, credential: {present}}.
#   Output: {allow, status, code, reason}; denied unless a rule allows.
# entrypoint: true
default decision := {
	"allow": false, "status": 403, "code": "access_denied",
	"reason": "Access denied by policy.",
}

decision := _deny(401, "missing_api_key", "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.") if {
	not input.credential.present == true
} else := _deny(401, "invalid_token", concat("", ["Invalid bearer token: ", input.credential.error, "."])) if {
	not is_object(input.principal)
	is_string(input.credential.error)
	input.credential.error != ""
} else := _deny(401, "invalid_api_key", "Incorrect API key provided.") if {
	not is_object(input.principal)
} else := _deny(401, "invalid_api_key", "This API key has expired.") if {
	input.principal.status == "expired"
} else := _deny(401, "invalid_api_key", "The owner of this API key is disabled.") if {
	input.principal.status == "disabled"
} else := _deny(401, "invalid_api_key", "This API key is not active.") if {
	not input.principal.status == "active"
} else := _deny(403, "no_roles", "This API key holds no roles: its owner no longer holds the roles it was given.") if {
	count(object.get(input.principal, "roles", [])) == 0
} else := _deny(403, "internal_method", concat("", [input.request.method, " is internal and not callable through the gateway."])) if {
	_internal
} else := _deny(403, "insufficient_role", concat("", [_service, " needs the role platform_admin."])) if {
	data.lockgate.access.platform_services[_service]
	not "platform_admin" in input.principal.roles
} else := _deny(403, "insufficient_role", concat("", [input.request.method, " needs one of the roles ", concat(", ", data.lockgate.access.method_roles[input.request.method]), "."])) if {
	_lacks_method_role
} else := _deny(403, "scope_not_allowed", concat("", ["This API key is not scoped for ", _service, " (it needs the scope ", _needed_scope, ")."])) if {
	_scope_missing
} else := _deny(403, "model_not_allowed", concat("", ["This API key may not use the model `", input.request.model, "`."])) if {
	_model_out_of_scope
} else := _deny(503, "governance_unavailable", "The gateway has not loaded its API governance data yet; retry shortly.") if {
	input.request.model != ""
	object.get(input, ["governance", "ready"], true) == false
} else := _deny(410, "version_retired", concat("", ["Version ", input.api.version, " of the API ", input.api.name, " was retired", _successor_hint, "."])) if {
	_api.state == "retired"
} else := _deny(403, "subscription_required", concat("", ["Your team has no approved subscription to the API ", input.api.name, " (", input.api.version, "). Request one: lockgate subscriptions create --api ", input.api.id, "."])) if {
	_api.state != "retired"
	not _may_call_unsubscribed
	not input.subscription.approved == true
} else := {"allow": true, "status": 200, "code": "ok", "reason": "Allowed."} if {
	startswith(input.request.method, "/")
	is_string(input.request.model)
}

_deny(status, code, reason) := {"allow": false, "status": status, "code": code, "reason": reason}

# "/pkg.Service/Method" -> "pkg.Service"
_service := split(input.request.method, "/")[1]

_internal if data.lockgate.access.internal_methods[input.request.method]

_internal if data.lockgate.access.internal_services[_service]

_lacks_method_role if {
	needed := data.lockgate.access.method_roles[input.request.method]
	count({role | some role in needed; role in input.principal.roles}) == 0
}

_needed_scope := object.get(data.lockgate.access.service_scopes, _service, "")

# A scope-limited key calls a service outside its scopes (services without a scope
# are governed by roles alone).
_scope_missing if {
	_needed_scope != ""
	count(object.get(input.principal, "scopes", [])) > 0
	not _needed_scope in input.principal.scopes
}

# A model-scoped key asks for a model outside its scope ("" = no model asked for).
_model_out_of_scope if {
	is_string(input.request.model)
	input.request.model != ""
	count(object.get(input.principal, "models", [])) > 0
	not input.request.model in input.principal.models
}

# -- governed APIs (the registry's view of the requested alias) ---------------------------

# The API version bound to the requested alias; undefined when the alias is ungoverned.
_api := input.api if is_object(input.api)

_successor_hint := concat("", ["; use version ", input.api.successor, " instead"]) if {
	is_string(input.api.successor)
	input.api.successor != ""
} else := ""

# The owners (the owner team, the tenant's admins) and platform admins call without one.
_may_call_unsubscribed if {
	input.principal.tenant_id == _api.tenant_id
	input.principal.team_id == _api.owner_team_id
	_api.owner_team_id != ""
}

_may_call_unsubscribed if {
	input.principal.tenant_id == _api.tenant_id
	"tenant_admin" in input.principal.roles
}

_may_call_unsubscribed if "platform_admin" in input.principal.roles
