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
	_decide(revoked, _method("/lockgate.router.v1.RouterAdminService/GetRoutingTable"), _present).status == 401
}

# -- 403: internal methods and services ---------------------------------------------------

test_record_usage_is_internal_even_for_admins if {
	d := _decide(_platform_admin, _method("/lockgate.ledger.v1.LedgerService/RecordUsage"), _present)
	d.allow == false
	d.status == 403
	d.code == "internal_method"
	contains(d.reason, "/lockgate.ledger.v1.LedgerService/RecordUsage")
}

test_admission_rpcs_are_internal if {
	_decide(_platform_admin, _method("/lockgate.ledger.v1.LedgerService/Admit"), _present).code == "internal_method"
	_decide(_platform_admin, _method("/lockgate.ledger.v1.LedgerService/ReturnTickets"), _present).code == "internal_method"
}

# -- 403: methods that need one of some roles ----------------------------------------------

test_price_changes_need_a_platform_admin if {
	d := _decide(object.union(_developer, {"roles": ["tenant_admin"]}), _method("/lockgate.ledger.v1.LedgerService/SetPrice"), _present)
	d.allow == false
	d.status == 403
	d.code == "insufficient_role"
	d.reason == "/lockgate.ledger.v1.LedgerService/SetPrice needs one of the roles platform_admin."
	_decide(_platform_admin, _method("/lockgate.ledger.v1.LedgerService/SetPrice"), _present).allow == true
	_decide(_developer, _method("/lockgate.ledger.v1.LedgerService/ListPrices"), _present).allow == true
}

test_budgets_and_limits_need_an_admin_role if {
	every method in ["SetBudget", "DeleteBudget", "SetRateLimit", "DeleteRateLimit"] {
		full := concat("", ["/lockgate.ledger.v1.LedgerService/", method])
		_decide(_developer, _method(full), _present).code == "insufficient_role"
		_decide(object.union(_developer, {"roles": ["viewer", "team_admin"]}), _method(full), _present).allow == true
		_decide(object.union(_developer, {"roles": ["tenant_admin"]}), _method(full), _present).allow == true
	}
}

test_budget_and_limit_reads_are_open_to_every_role if {
	_decide(_developer, _method("/lockgate.ledger.v1.LedgerService/ListBudgets"), _present).allow == true
	_decide(_developer, _method("/lockgate.ledger.v1.LedgerService/ListRateLimits"), _present).allow == true
	_decide(_developer, _method("/lockgate.ledger.v1.LedgerService/ListCalls"), _present).allow == true
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

# -- 403: platform services (more below, with the routing table) -------------------------

test_a_role_named_like_the_service_is_not_an_admin if {
	odd := object.union(_developer, {"roles": ["admin", "lockgate.router.v1.RouterAdminService", "platform_admin "]})
	_decide(odd, _routing_table, _present).code == "insufficient_role"
}

test_every_role_reaches_the_admin_api_whose_policy_decides if {
	viewer := object.union(_developer, {"roles": ["viewer"]})
	_decide(viewer, _method("/lockgate.auth.v1.AuthService/ListApiKeys"), _present).allow == true
	_decide(_developer, _method("/lockgate.auth.v1.AuthService/CreateApiKey"), _present).allow == true
}

# -- 401/403: expiry, disabled owners, keys left without roles ---------------------------

test_expired_key_is_401_with_its_own_reason if {
	d := _decide(object.union(_developer, {"status": "expired"}), _chat, _present)
	d.status == 401
	d.reason == "This API key has expired."
}

test_key_of_disabled_owner_is_401 if {
	d := _decide(object.union(_developer, {"status": "disabled"}), _chat, _present)
	d.status == 401
	d.reason == "The owner of this API key is disabled."
}

test_key_without_roles_is_403_no_roles if {
	_decide(object.union(_developer, {"roles": []}), _chat, _present).code == "no_roles"
	_decide(object.remove(_developer, ["roles"]), _chat, _present).code == "no_roles"
}

# -- 403: API scopes ---------------------------------------------------------------------

test_unscoped_key_may_call_every_api if {
	_decide(_developer, _method("/lockgate.registry.v1.RegistryService/ListApis"), _present).allow == true
}

test_inference_scoped_key_may_chat_but_not_administer if {
	scoped := object.union(_developer, {"scopes": ["inference"]})
	_decide(scoped, _chat, _present).allow == true
	d := _decide(scoped, _method("/lockgate.auth.v1.AuthService/ListApiKeys"), _present)
	d.status == 403
	d.code == "scope_not_allowed"
	contains(d.reason, "admin")
}

test_admin_scoped_key_may_not_chat if {
	scoped := object.union(_platform_admin, {"scopes": ["admin"]})
	_decide(scoped, _chat, _present).code == "scope_not_allowed"
	_decide(scoped, _method("/lockgate.router.v1.RouterAdminService/GetRoutingTable"), _present).allow == true
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
		_decide(object.union(secretive, {"status": "active"}), _method("/lockgate.ledger.v1.LedgerService/RecordUsage"), _present),
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

# -- 401: user JWTs ------------------------------------------------------------------------

test_refused_jwt_says_why if {
	d := _decide(null, _chat, {"present": true, "error": "token expired"})
	d.status == 401
	d.code == "invalid_token"
	d.reason == "Invalid bearer token: token expired."
}

test_jwt_user_principal_may_chat if {
	user := object.union(_developer, {"key_id": "", "kind": "user", "id": "usr_1"})
	_decide(user, _chat, {"present": true, "error": ""}).allow == true
}

# -- governed APIs --------------------------------------------------------------------------

_api_v1 := {
	"id": "api_1", "name": "support", "tenant_id": "ten_1", "owner_team_id": "team_own",
	"version": "v1", "state": "published", "successor": "",
}

_dev_in(team) := object.union(_developer, {"team_id": team})

_decide_gov(principal, api, approved, ready) := d if {
	request := _chat
	credential := _present
	subscription := {"approved": approved}
	governance := {"ready": ready}
	d := access.decision with input.principal as principal
		with input.request as request
		with input.credential as credential
		with input.api as api
		with input.subscription as subscription
		with input.governance as governance
}

test_ungoverned_alias_needs_no_subscription if {
	_decide_gov(_dev_in("team_b"), null, false, true).allow == true
}

test_governed_alias_needs_an_approved_subscription if {
	d := _decide_gov(_dev_in("team_b"), _api_v1, false, true)
	d.status == 403
	d.code == "subscription_required"
	contains(d.reason, "support")
	_decide_gov(_dev_in("team_b"), _api_v1, true, true).allow == true
}

test_owner_team_and_admins_call_without_a_subscription if {
	_decide_gov(_dev_in("team_own"), _api_v1, false, true).allow == true
	tenant_admin := object.union(_dev_in("team_b"), {"roles": ["tenant_admin"]})
	_decide_gov(tenant_admin, _api_v1, false, true).allow == true
	_decide_gov(_platform_admin, _api_v1, false, true).allow == true
}

test_owner_team_of_another_tenant_is_not_the_owner if {
	other := object.union(_dev_in("team_own"), {"tenant_id": "ten_2"})
	_decide_gov(other, _api_v1, false, true).code == "subscription_required"
}

test_deprecated_versions_still_answer if {
	deprecated := object.union(_api_v1, {"state": "deprecated", "successor": "v2"})
	_decide_gov(_dev_in("team_b"), deprecated, true, true).allow == true
}

test_retired_version_is_410_naming_the_successor if {
	retired := object.union(_api_v1, {"state": "retired", "successor": "v2"})
	d := _decide_gov(_dev_in("team_b"), retired, true, true)
	d.status == 410
	d.code == "version_retired"
	d.reason == "Version v1 of the API support was retired; use version v2 instead."
	_decide_gov(_dev_in("team_own"), retired, false, true).status == 410
}

test_not_ready_governance_fails_closed_for_model_calls if {
	d := _decide_gov(_dev_in("team_b"), null, false, false)
	d.status == 503
	d.code == "governance_unavailable"
}
