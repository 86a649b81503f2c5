# Routing: which deployments of a model alias may serve this caller?
#
# Asked by the router for every call (and for GET /v1/models), through the
# embedded engine (lockgate/policy.py): entry point `lockgate/routing/decision`.
# The router caches decisions per caller, alias and policy/config revision.
#
# Input document:
#
#   {
#     "caller": {
#       "tenant_id": "ten_…", "tenant_name": "acme", "key_id": "key_…",
#       "roles": ["developer"],
#       "models": []                      # the key's model scope; [] = every alias
#     },
#     "alias": "chat",                    # the model alias asked for
#     "kind": "chat",                     # "chat" or "embeddings"
#     "deployments": [                    # the alias's deployments, from the gateway config
#       {"name": "gpt-eu", "provider": "azure-eu", "provider_type": "azure",
#        "model": "gpt-4o", "region": "eu-west-1", "labels": {"residency": "eu"}}
#     ]
#   }
#
# Data (data.json beside this file, mounted at data.lockgate.routing; tenants
# are named by tenant name or tenant id):
#
#   tenant_regions:  {"acme": {"eu-west-1": true, …}}  the tenant's calls may only go
#                    to deployments in these regions (absent: any region)
#   tenant_labels:   {"acme": {"residency": "eu"}}     …and only to deployments carrying
#                    every one of these labels (absent: no constraint)
#   tenant_aliases:  {"acme": {"chat": true}}          the only aliases the tenant may use
#                    (absent: every alias)
#
# Output: decision = {"alias_allowed": bool, "deployments": [names], "reason": str}.
# `deployments` keeps the input order (the router's strategy orders them);
# `reason` explains a denial to the caller: never put another tenant's data in it.
package lockgate.routing

# METADATA
# title: Routing decision
# description: >-
#   Which deployments of an alias may serve the caller. Input: {caller:
#   {tenant_id, tenant_name, key_id, roles, models}, alias, kind,
#   deployments: [{name, provider, provider_type, model, region, labels}]}.
#   Output: {alias_allowed, deployments, reason}.
# entrypoint: true
default decision := {"alias_allowed": false, "deployments": [], "reason": "Routing denied by policy."}

decision := _deny(concat("", ["This API key may not use the model `", input.alias, "`."])) if {
	_out_of_key_scope
} else := _deny(concat("", ["Your organization may not use the model `", input.alias, "`."])) if {
	_alias_not_for_tenant
} else := _deny(concat("", ["No deployment of the model `", input.alias, "` satisfies your organization's data residency policy."])) if {
	count(_allowed) == 0
} else := {"alias_allowed": true, "deployments": _allowed, "reason": "Allowed."} if {
	is_string(input.alias)
}

_deny(reason) := {"alias_allowed": false, "deployments": [], "reason": reason}

_out_of_key_scope if {
	count(input.caller.models) > 0
	not input.alias in input.caller.models
}

# The tenant's entry in a data table, by name first, then by id.
_tenant_entry(table) := table[input.caller.tenant_name]

_tenant_entry(table) := table[input.caller.tenant_id] if not table[input.caller.tenant_name]

_alias_not_for_tenant if {
	aliases := _tenant_entry(data.lockgate.routing.tenant_aliases)
	not aliases[input.alias]
}

_allowed := [d.name | some d in input.deployments; _deployment_ok(d)]

_deployment_ok(d) if {
	_region_ok(d)
	_labels_ok(d)
}

_region_ok(_) if not _tenant_entry(data.lockgate.routing.tenant_regions)

_region_ok(d) if _tenant_entry(data.lockgate.routing.tenant_regions)[d.region]

_labels_ok(_) if not _tenant_entry(data.lockgate.routing.tenant_labels)

_labels_ok(d) if {
	wanted := _tenant_entry(data.lockgate.routing.tenant_labels)
	every name, value in wanted {
		object.get(d.labels, name, null) == value
	}
}
