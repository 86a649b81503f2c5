# Tests of lockgate.access (run: pytest tests/unit/test_policies.py).
#
# rego-cpp 1.5.2 quirks shape these tests (see policies/README.md):
# * `with input as {…}` crashes when the rule under test uses other rules, so
#   `_decide` replaces the input field by field (`with input.request as …`);
# * `with … as _rule` silently does nothing: bind the value to a local
#   variable (or a function argument) first.
package lockgate.access_test

import data.lockgate.access

_chat := {
	"method": "/lockgate.router.v1.RouterService/OpenAIChatCompletions",
	"http_method": "POST",
	"path": "/v1/chat/completions",
	"model": "demo",
}

_list_models := {
	"method": "/lockgate.router.v1.RouterService/OpenAIListModels",
	"http_method": "GET",
	"path": "/v1/models",
	"model": "",
}

_developer := {
	"key_id": "key_dev", "tenant_id": "ten_1", "tenant_name": "default",
	"roles": ["developer"], "models": [], "status": "active",
}

_platform_admin := object.union(_developer, {"key_id": "key_admin", "roles": ["platform_admin"]})

_present := {"present": true}

_decide(principal, request, credential) := d if {
	d := access.decision with input.principal as principal
		with input.request as request
		with input.credential as credential
}

_method(name) := object.union(_chat, {"method": name, "model": ""})

_with_models(models) := object.union(_developer, {"models": models})

# -- allow ------------------------------------------------------------------------

test_developer_may_chat if {
	d := _decide(_developer, _chat, _present)
	d == {"allow": true, "status": 200, "code": "ok", "reason": "Allowed."}
}

test_developer_may_list_models if {
	_decide(_developer, _list_models, _present).allow == true
}

test_platform_admin_may_chat if {
	_decide(_platform_admin, _chat, _present).allow == true
}

# -- 401: credentials ---------------------------------------------------------------

test_no_credential_is_401_missing_api_key if {
	d := _decide(null, _chat, {"present": false})
	d.allow == false
	d.status == 401
	d.code == "missing_api_key"
	contains(d.reason, "Authorization: Bearer")
}

test_missing_credential_wins_over_a_principal if {
	# Never happens in practice, but the credential check comes first.
	_decide(_developer, _chat, {"present": false}).code == "missing_api_key"
}

test_credential_field_absent_is_missing_api_key if {
	principal := _developer
	request := _chat
	d := access.decision with input.principal as principal with input.request as request
	d.code == "missing_api_key"
}

test_credential_present_must_be_true_not_truthy if {
	_decide(_developer, _chat, {"present": "yes"}).code == "missing_api_key"
}

test_unknown_key_is_401_invalid_api_key if {
	d := _decide(null, _chat, _present)
	d.allow == false
	d.status == 401
	d.code == "invalid_api_key"
	d.reason == "Incorrect API key provided."
}

test_principal_absent_is_401_invalid_api_key if {
	credential := _present
	request := _chat
	d := access.decision with input.credential as credential with input.request as request
	d.status == 401
	d.code == "invalid_api_key"
}

test_principal_not_an_object_is_401 if {
	d := _decide("key_dev", _chat, _present)
	d.code == "invalid_api_key"
	d.reason == "Incorrect API key provided."
}

test_revoked_key_is_401_invalid_api_key if {
	d := _decide(object.union(_developer, {"status": "revoked"}), _chat, _present)
	d.allow == false
	d.status == 401
	d.code == "invalid_api_key"
	d.reason == "This API key is not active."
}

test_principal_without_status_is_401 if {
	d := _decide(object.remove(_developer, ["status"]), _chat, _present)
	d.status == 401
	d.code == "invalid_api_key"
}

test_revoked_admin_key_is_401_even_for_admin_methods if {
	revoked := object.union(_platform_admin, {"status": "revoked"})
	_decide(revoked, _method("/lockgate.auth.v1.AuthService/CreateApiKey"), _present).status == 401
}

# -- 403: internal methods and services ---------------------------------------------------

test_record_usage_is_internal_even_for_admins if {
	d := _decide(_platform_admin, _method("/lockgate.ledger.v1.LedgerService/RecordUsage"), _present)
	d.allow == false
	d.status == 403
	d.code == "internal_method"
	contains(d.reason, "/lockgate.ledger.v1.LedgerService/RecordUsage")
}

test_other_ledger_methods_are_not_internal if {
	_decide(_developer, _method("/lockgate.ledger.v1.LedgerService/ListUsage"), _present).allow == true
}

test_health_is_internal if {
	_decide(_platform_admin, _method("/grpc.health.v1.Health/Check"), _present).code == "internal_method"
	_decide(_platform_admin, _method("/grpc.health.v1.Health/Watch"), _present).code == "internal_method"
	_decide(_platform_admin, _method("/grpc.health.v1.Health/List"), _present).code == "internal_method"
}

test_reflection_is_internal if {
	v1 := "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
	v1alpha := "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
	_decide(_platform_admin, _method(v1), _present).code == "internal_method"
	_decide(_platform_admin, _method(v1alpha), _present).code == "internal_method"
}

test_invalid_key_is_401_before_internal_403 if {
	# An unauthenticated caller learns nothing about which methods exist.
	_decide(null, _method("/lockgate.ledger.v1.LedgerService/RecordUsage"), _present).status == 401
}

# -- 403: admin services ---------------------------------------------------------------

test_developer_may_not_call_the_auth_service if {
	d := _decide(_developer, _method("/lockgate.auth.v1.AuthService/CreateApiKey"), _present)
	d.allow == false
	d.status == 403
	d.code == "insufficient_role"
	contains(d.reason, "lockgate.auth.v1.AuthService")
	contains(d.reason, "platform_admin")
}

test_platform_admin_may_call_the_auth_service if {
	d := _decide(_platform_admin, _method("/lockgate.auth.v1.AuthService/CreateApiKey"), _present)
	d.allow == true
	d.status == 200
}

test_tenant_admin_may_call_the_auth_service if {
	tenant_admin := object.union(_developer, {"roles": ["developer", "tenant_admin"]})
	_decide(tenant_admin, _method("/lockgate.auth.v1.AuthService/ListApiKeys"), _present).allow == true
}

test_key_without_roles_is_not_an_admin if {
	no_roles := object.remove(_developer, ["roles"])
	_decide(no_roles, _method("/lockgate.auth.v1.AuthService/ListTenants"), _present).code == "insufficient_role"
	_decide(object.union(_developer, {"roles": []}), _method("/lockgate.auth.v1.AuthService/ListTenants"), _present).code == "insufficient_role"
}

test_a_role_named_like_the_service_is_not_an_admin if {
	odd := object.union(_developer, {"roles": ["admin", "lockgate.auth.v1.AuthService", "platform_admin "]})
	_decide(odd, _method("/lockgate.auth.v1.AuthService/CreateTenant"), _present).code == "insufficient_role"
}

test_admin_role_does_not_lift_model_scope if {
	scoped_admin := object.union(_platform_admin, {"models": ["other"]})
	_decide(scoped_admin, _chat, _present).code == "model_not_allowed"
}

# -- 403: model scope ------------------------------------------------------------------

test_unscoped_key_may_use_any_model if {
	_decide(_developer, object.union(_chat, {"model": "anything"}), _present).allow == true
}

test_scoped_key_may_use_its_models if {
	_decide(_with_models(["demo", "other"]), _chat, _present).allow == true
}

test_scoped_key_may_not_use_other_models if {
	d := _decide(_with_models(["other"]), _chat, _present)
	d.allow == false
	d.status == 403
	d.code == "model_not_allowed"
	d.reason == "This API key may not use the model `demo`."
}

test_model_match_is_exact if {
	_decide(_with_models(["Demo"]), _chat, _present).code == "model_not_allowed"
	_decide(_with_models(["dem"]), _chat, _present).code == "model_not_allowed"
	_decide(_with_models(["demo "]), _chat, _present).code == "model_not_allowed"
}

test_scope_ignored_when_no_model_is_requested if {
	_decide(_with_models(["other"]), _list_models, _present).allow == true
}

test_key_without_models_field_is_unscoped if {
	_decide(object.remove(_developer, ["models"]), _chat, _present).allow == true
}

# -- default deny ------------------------------------------------------------------------

test_request_absent_is_denied if {
	principal := _developer
	credential := _present
	d := access.decision with input.principal as principal with input.credential as credential
	d.allow == false
	d.code == "access_denied"
}

test_method_not_a_grpc_path_is_denied if {
	d := _decide(_developer, object.union(_chat, {"method": "v1/chat/completions"}), _present)
	d.allow == false
	d.status == 403
}

test_model_not_a_string_is_denied if {
	every model in [null, 5, ["demo"], {"name": "demo"}] {
		d := _decide(_developer, object.union(_chat, {"model": model}), _present)
		d.allow == false
		d.code == "access_denied"
	}
	every model in [null, 5] {
		d := _decide(_with_models(["demo"]), object.union(_chat, {"model": model}), _present)
		d.allow == false
		d.code == "access_denied"
	}
}

test_model_absent_is_denied if {
	d := _decide(_developer, object.remove(_chat, ["model"]), _present)
	d.allow == false
	d.status == 403
}

test_no_input_is_denied if {
	d := access.decision
	d.allow == false
	d.status == 401
}

# -- reasons --------------------------------------------------------------------------------

test_reasons_never_echo_keys if {
	secretive := object.union(_developer, {"key_id": "key_SECRET", "status": "revoked"})
	denials := [
		_decide(null, _chat, {"present": false}),
		_decide(null, _chat, _present),
		_decide(secretive, _chat, _present),
		_decide(object.union(secretive, {"status": "active", "models": ["x"]}), _chat, _present),
		_decide(object.union(secretive, {"status": "active"}), _method("/lockgate.auth.v1.AuthService/ListTenants"), _present),
	]
	every d in denials {
		d.allow == false
		not contains(d.reason, "SECRET")
		not contains(d.reason, "ten_1")
	}
}

# -- platform services ------------------------------------------------------------------

_routing_table := _method("/lockgate.router.v1.RouterAdminService/GetRoutingTable")

test_platform_admin_may_read_the_routing_table if {
	_decide(_platform_admin, _routing_table, _present).allow == true
}

test_tenant_admin_may_not_read_the_routing_table if {
	tenant_admin := object.union(_developer, {"roles": ["tenant_admin"]})
	d := _decide(tenant_admin, _routing_table, _present)
	d.allow == false
	d.status == 403
	d.reason == "lockgate.router.v1.RouterAdminService needs the role platform_admin."
}

test_developer_may_not_reload_the_gateway_config if {
	d := _decide(_developer, _method("/lockgate.router.v1.RouterAdminService/ReloadGatewayConfig"), _present)
	d.allow == false
	d.code == "insufficient_role"
}
