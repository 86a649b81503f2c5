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
#       "key_id": "key_…", "tenant_id": "ten_…", "tenant_name": "default",
#       "roles": ["platform_admin", …],    # see services/auth/service.py ROLES
#       "models": [],                      # [] = every model; else the only models allowed
#       "status": "active"                 # or "revoked", …
#     },
#     "request": {
#       "method": "/lockgate.router.v1.RouterService/OpenAIChatCompletions",  # always the gRPC method
#       "http_method": "POST",
#       "path": "/v1/chat/completions",    # the original (REST or gRPC) path
#       "model": "demo"                    # "" when the method takes no model
#     },
#     "credential": {"present": true}      # a key was presented, valid or not
#   }
#
# Data (data.json beside this file, mounted at data.lockgate.access; keyed
# objects, so every check is a lookup, never a scan):
#
#   internal_methods:  {"/pkg.Service/Method": true}  never callable from outside
#   internal_services: {"pkg.Service": true}          no method of it is callable from outside
#   admin_services:    {"pkg.Service": true}          needs one of admin_roles
#   admin_roles:       {"platform_admin": true, …}
#   platform_services: {"pkg.Service": true}          needs the platform_admin role (gateway-wide
#                                                     operations, not tenant data)
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
} else := _deny(401, "invalid_api_key", "Incorrect API key provided.") if {
	not is_object(input.principal)
} else := _deny(401, "invalid_api_key", "This API key is not active.") if {
	not input.principal.status == "active"
} else := _deny(403, "internal_method", concat("", [input.request.method, " is internal and not callable through the gateway."])) if {
	_internal
} else := _deny(403, "insufficient_role", concat("", [_service, " needs the role platform_admin."])) if {
	data.lockgate.access.platform_services[_service]
	not "platform_admin" in input.principal.roles
} else := _deny(403, "insufficient_role", concat("", [_service, " needs one of the roles ", _admin_role_names, "."])) if {
	data.lockgate.access.admin_services[_service]
	not _admin
} else := _deny(403, "model_not_allowed", concat("", ["This API key may not use the model `", input.request.model, "`."])) if {
	_model_out_of_scope
} else := {"allow": true, "status": 200, "code": "ok", "reason": "Allowed."} if {
	startswith(input.request.method, "/")
	is_string(input.request.model)
}

_deny(status, code, reason) := {"allow": false, "status": status, "code": code, "reason": reason}

# "/pkg.Service/Method" -> "pkg.Service"
_service := split(input.request.method, "/")[1]

_internal if data.lockgate.access.internal_methods[input.request.method]

_internal if data.lockgate.access.internal_services[_service]

_admin if {
	some role in input.principal.roles
	data.lockgate.access.admin_roles[role]
}

_admin_role_names := concat(", ", sort([role | data.lockgate.access.admin_roles[role]]))

# A model-scoped key asks for a model outside its scope ("" = no model asked for).
_model_out_of_scope if {
	is_string(input.request.model)
	input.request.model != ""
	count(object.get(input.principal, "models", [])) > 0
	not input.request.model in input.principal.models
}
