# Tests of lockgate.routing (run: pytest tests/unit/test_policies.py).
# Inputs are replaced field by field and data tables one at a time: rego-cpp
# 1.5.2 crashes on `with input as {…}` when the rule under test uses other
# rules (see policies/README.md).
package lockgate.routing_test

import data.lockgate.routing

_caller := {"tenant_id": "ten_1", "tenant_name": "acme", "key_id": "key_1", "roles": ["developer"], "models": []}

_deployments := [
	{"name": "us", "provider": "p-us", "provider_type": "openai", "model": "m", "region": "us-east-1", "labels": {}},
	{"name": "eu", "provider": "p-eu", "provider_type": "azure", "model": "m", "region": "eu-west-1", "labels": {"residency": "eu"}},
	{"name": "eu2", "provider": "p-eu", "provider_type": "azure", "model": "m", "region": "eu-central-1", "labels": {"residency": "eu", "tier": "gold"}},
]

# `with … as _rule` silently does nothing in rego-cpp 1.5.2: bind rules to locals first.
_decide(caller, alias, regions, labels, aliases) := d if {
	deployments := _deployments
	d := routing.decision with input.caller as caller
		with input.alias as alias
		with input.kind as "chat"
		with input.deployments as deployments
		with data.lockgate.routing.tenant_regions as regions
		with data.lockgate.routing.tenant_labels as labels
		with data.lockgate.routing.tenant_aliases as aliases
}

test_no_constraints_allows_every_deployment_in_order if {
	d := _decide(_caller, "chat", {}, {}, {})
	d.alias_allowed == true
	d.deployments == ["us", "eu", "eu2"]
}

test_region_allowlist_by_tenant_name if {
	d := _decide(_caller, "chat", {"acme": {"eu-west-1": true, "eu-central-1": true}}, {}, {})
	d.deployments == ["eu", "eu2"]
}

test_region_allowlist_by_tenant_id if {
	d := _decide(_caller, "chat", {"ten_1": {"eu-west-1": true}}, {}, {})
	d.deployments == ["eu"]
}

test_other_tenants_rules_do_not_apply if {
	d := _decide(_caller, "chat", {"globex": {"eu-west-1": true}}, {}, {})
	d.deployments == ["us", "eu", "eu2"]
}

test_label_constraint_needs_every_label if {
	d := _decide(_caller, "chat", {}, {"acme": {"residency": "eu", "tier": "gold"}}, {})
	d.deployments == ["eu2"]
}

test_no_deployment_left_is_denied_with_a_reason if {
	d := _decide(_caller, "chat", {"acme": {"ap-south-1": true}}, {}, {})
	d.alias_allowed == false
	d.deployments == []
	contains(d.reason, "data residency")
}

test_alias_allowlist if {
	_decide(_caller, "chat", {}, {}, {"acme": {"chat": true}}).alias_allowed == true
	d := _decide(_caller, "other", {}, {}, {"acme": {"chat": true}})
	d.alias_allowed == false
	d.reason == "Your organization may not use the model `other`."
}

test_key_model_scope if {
	scoped := object.union(_caller, {"models": ["chat"]})
	_decide(scoped, "chat", {}, {}, {}).alias_allowed == true
	d := _decide(scoped, "other", {}, {}, {})
	d.alias_allowed == false
	d.reason == "This API key may not use the model `other`."
}

test_malformed_input_is_denied if {
	caller := _caller
	deployments := _deployments
	d := routing.decision with input.caller as caller
		with input.alias as 42
		with input.kind as "chat"
		with input.deployments as deployments
	d.alias_allowed == false
}
