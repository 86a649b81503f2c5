package lockgate.access_test

import data.lockgate.access

_chat := {
	"method": "/lockgate.router.v1.RouterService/OpenAIChatCompletions",
	"http_method": "POST",
	"path": "/v1/chat/completions",
	"model": "demo",
}

_developer := {
	"key_id": "key_1", "tenant_id": "ten_1", "tenant_name": "default",
	"roles": ["developer"], "models": [], "status": "active",
}

_admin := object.union(_developer, {"roles": ["platform_admin"]})

_in(principal, request) := {"principal": principal, "credential": {"present": true}, "request": request}

test_developer_may_chat if {
	d := access.decide(_in(_developer, _chat))
	d.allow == true
	d.status == 200
}

test_no_credential_is_401_missing_key if {
	d := access.decide({"principal": null, "credential": {"present": false}, "request": _chat})
	d.allow == false
	d.status == 401
	d.code == "missing_api_key"
}

test_unknown_key_is_401_invalid_key if {
	d := access.decide(_in(null, _chat))
	d.allow == false
	d.status == 401
	d.code == "invalid_api_key"
}

test_revoked_key_is_401 if {
	d := access.decide(_in(object.union(_developer, {"status": "revoked"}), _chat))
	d.status == 401
	d.code == "invalid_api_key"
}

test_internal_method_is_403_even_for_admins if {
	request := object.union(_chat, {"method": "/lockgate.ledger.v1.LedgerService/RecordUsage"})
	d := access.decide(_in(_admin, request))
	d.allow == false
	d.status == 403
	d.code == "internal_method"
}

test_admin_service_needs_admin_role if {
	request := object.union(_chat, {"method": "/lockgate.auth.v1.AuthService/CreateApiKey", "model": ""})
	denied := access.decide(_in(_developer, request))
	denied.status == 403
	denied.code == "insufficient_role"
	allowed := access.decide(_in(_admin, request))
	allowed.allow == true
}

test_tenant_admin_is_an_admin_role if {
	request := object.union(_chat, {"method": "/lockgate.auth.v1.AuthService/ListApiKeys", "model": ""})
	d := access.decide(_in(object.union(_developer, {"roles": ["tenant_admin"]}), request))
	d.allow == true
}

test_model_scoped_key_may_use_its_models_only if {
	ok := access.decide(_in(object.union(_developer, {"models": ["demo", "other"]}), _chat))
	ok.allow == true
	denied := access.decide(_in(object.union(_developer, {"models": ["other"]}), _chat))
	denied.status == 403
	denied.code == "model_not_allowed"
	contains(denied.reason, "demo")
}

test_model_scope_ignored_when_no_model_requested if {
	narrow := object.union(_developer, {"models": ["other"]})
	request := object.union(_chat, {"method": "/lockgate.router.v1.RouterService/OpenAIListModels", "model": ""})
	d := access.decide(_in(narrow, request))
	d.allow == true
}

test_reasons_never_echo_credentials if {
	d := access.decide({"principal": null, "credential": {"present": true}, "request": _chat})
	not contains(d.reason, "lg_")
}

test_service_of if {
	access.service_of("/lockgate.auth.v1.AuthService/CreateApiKey") == "lockgate.auth.v1.AuthService"
}
