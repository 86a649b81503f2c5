# METADATA
# title: Gateway access
# description: |
#   Decides every request that reaches the gateway (Envoy ext_authz -> auth.Check).
#
#   Input:
#     principal:  null when no valid key, else
#                 {key_id, tenant_id, tenant_name, roles: [..], models: [..], status}
#     credential: {present: bool}      a key was presented (valid or not)
#     request:    {method: "/pkg.Service/Method" (always the gRPC method, REST or not),
#                  http_method, path (the original path), model: "" or the alias asked for}
#   Data (data.json beside this file, keyed objects for O(1) lookups):
#     internal_methods: {"/pkg.Service/Method": true}  never callable from outside
#     admin_services:   {"pkg.Service": true}          need an admin role
#     admin_roles:      {"platform_admin": true, ...}
#   Output: decision = {allow, status (200/401/403), code, reason}
#
#   The rules are functions of the input document (`decide(inp)`), and
#   `decision` applies them to `input`. Tests call the functions directly:
#   rego-cpp 1.5.2 (the embedded engine) crashes on `with input as` over
#   rules that depend on other rules.
package lockgate.access

# METADATA
# title: decision
# description: The access decision for this request.
# entrypoint: true
decision := decide(input)

# The first matching denial wins; otherwise allow.
decide(inp) := {"allow": false, "status": 401, "code": "missing_api_key",
	"reason": "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."} if {
	not inp.credential.present
} else := {"allow": false, "status": 401, "code": "invalid_api_key",
	"reason": "Incorrect API key provided."} if {
	inp.principal == null
} else := {"allow": false, "status": 401, "code": "invalid_api_key",
	"reason": "This API key is not active."} if {
	inp.principal.status != "active"
} else := {"allow": false, "status": 403, "code": "internal_method",
	"reason": sprintf("%s is not callable through the gateway", [inp.request.method])} if {
	data.lockgate.access.internal_methods[inp.request.method]
} else := {"allow": false, "status": 403, "code": "insufficient_role",
	"reason": sprintf("%s needs an admin role", [service_of(inp.request.method)])} if {
	data.lockgate.access.admin_services[service_of(inp.request.method)]
	count(held_admin_roles(inp.principal)) == 0
} else := {"allow": false, "status": 403, "code": "model_not_allowed",
	"reason": sprintf("This API key may not use the model `%s`.", [inp.request.model])} if {
	model_out_of_scope(inp.principal, inp.request.model)
} else := {"allow": true, "status": 200, "code": "", "reason": ""}

# "/pkg.Service/Method" -> "pkg.Service"
service_of(method) := split(trim_prefix(method, "/"), "/")[0]

# The admin roles a principal holds.
held_admin_roles(principal) := {role |
	some role in principal.roles
	data.lockgate.access.admin_roles[role]
}

# A key scoped to models asks for one outside its scope.
model_out_of_scope(principal, model) if {
	model != ""
	count(principal.models) > 0
	count({m | some m in principal.models; m == model}) == 0
}
