# Tests of lockgate.admin (run: lockgate policy test, or pytest tests/unit/test_policies.py).
#
# rego-cpp 1.5.2 quirks shape these tests (see policies/README.md):
# * `with input as {…}` crashes when the rule under test uses other rules, so
#   `_decide` replaces the input field by field (`with input.principal as …`);
# * `with … as _rule` silently does nothing: values reach `with` as function
#   arguments;
# * a function parameter used as a key inside a comprehension is taken as a free
#   variable, an `every` nested in an `every` cannot use the outer variable, and a
#   comparison nested in a comparison is undefined when false: the tables below
#   are checked with `every` over helper functions.
#
# Fixtures: the caller is usr_me of tenant ten_1, acting in team team_a; ten_2 is
# another tenant. Matrix cases are [action, resource, expected status].
package lockgate.admin_test

import data.lockgate.admin

_not_found := {"allow": false, "status": 404, "reason": "not found", "scope": ""}

_me(roles) := {
	"kind": "user", "id": "usr_me", "key_id": "key_me",
	"tenant_id": "ten_1", "team_id": "team_a",
	"roles": roles, "scopes": [], "models": [],
}

_res(type, tenant, team, owner, roles) := {
	"type": type, "tenant_id": tenant, "team_id": team, "owner_id": owner, "roles": roles,
}

_decide(principal, action, resource) := d if {
	d := admin.decision with input.principal as principal
		with input.action as action
		with input.resource as resource
}

_decide_grant(principal, action, resource, grant) := d if {
	d := admin.decision with input.principal as principal
		with input.action as action
		with input.resource as resource
		with input.grant as grant
}

_grant(roles, scopes, models) := {"roles": roles, "scopes": scopes, "models": models}

# The same object in the other tenant (same team id and owner id: only the tenant differs).
_elsewhere(resource) := object.union(resource, {"tenant_id": "ten_2"})

# -- fixtures: objects of ten_1 -------------------------------------------------------------
# "near": mine / in my team; "mid": another user's, in my team; "far": another team's.

_tenants := _res("tenant", "", "", "", []) # container of tenants.list / tenants.create

_tenant := _res("tenant", "ten_1", "", "", [])

_new_team := _res("team", "ten_1", "", "", [])

_team_a := _res("team", "ten_1", "team_a", "", [])

_team_b := _res("team", "ten_1", "team_b", "", [])

_new_user := _res("user", "ten_1", "", "", [])

_user_me := _res("user", "ten_1", "team_a", "usr_me", ["viewer"])

_user_far := _res("user", "ten_1", "team_b", "usr_other", ["viewer"])

_new_sa_a := _res("service_account", "ten_1", "team_a", "", [])

_new_sa_b := _res("service_account", "ten_1", "team_b", "", [])

_sa_a := _res("service_account", "ten_1", "team_a", "sa_a", ["viewer"])

_sa_b := _res("service_account", "ten_1", "team_b", "sa_b", ["viewer"])

_new_key_me := _res("key", "ten_1", "team_a", "usr_me", [])

_new_key_far := _res("key", "ten_1", "team_b", "usr_other", [])

_key_me := _res("key", "ten_1", "team_a", "usr_me", ["viewer"])

_key_mid := _res("key", "ten_1", "team_a", "usr_mate", ["viewer"])

_key_far := _res("key", "ten_1", "team_b", "usr_other", ["viewer"])

_audit := _res("audit", "ten_1", "", "", [])

# The status a single-role caller gets, and the scope it must carry ("" on 404).
_as_expected(role, case) if {
	d := _decide(_me([role]), case[0], case[1])
	d.status == case[2]
	_allow_matches(d, case[2])
	d.scope == _expected_scope(role, case[0], case[2])
	is_string(d.reason)
	d.reason != ""
}

# (Not `d.allow == (status == 200)`: in rego-cpp 1.5.2 a comparison nested in a
# comparison is undefined when false.)
_allow_matches(d, status) if {
	status == 200
	d.allow == true
}

_allow_matches(d, status) if {
	status != 200
	d.allow == false
}

_expected_scope(role, action, status) := "" if {
	status == 404
} else := object.get(data.lockgate.admin.permissions[role], action, "")

# -- matrix: every role × every action × near / mid / far objects -----------------------------

_platform_admin_cases := [
	["tenants.create", _tenants, 200],
	["tenants.get", _tenant, 200],
	["tenants.list", _tenants, 200],
	["tenants.update", _tenant, 200],
	["teams.create", _new_team, 200],
	["teams.get", _team_b, 200],
	["teams.list", _tenant, 200],
	["teams.update", _team_b, 200],
	["teams.delete", _team_b, 200],
	["users.create", _new_user, 200],
	["users.get", _user_far, 200],
	["users.list", _tenant, 200],
	["users.update", _user_far, 200],
	["users.delete", _user_far, 200],
	["service_accounts.create", _new_sa_b, 200],
	["service_accounts.get", _sa_b, 200],
	["service_accounts.list", _tenant, 200],
	["service_accounts.update", _sa_b, 200],
	["service_accounts.delete", _sa_b, 200],
	["keys.create", _new_key_far, 200],
	["keys.get", _key_far, 200],
	["keys.list", _tenant, 200],
	["keys.update", _key_far, 200],
	["keys.rotate", _key_far, 200],
	["keys.revoke", _key_far, 200],
	["audit.list", _audit, 200],
]

test_platform_admin_matrix if {
	every case in _platform_admin_cases {
		_as_expected("platform_admin", case)
	}
}

test_platform_admin_matrix_in_another_tenant if {
	every case in _platform_admin_cases {
		_as_expected("platform_admin", [case[0], _elsewhere(case[1]), 200])
	}
}

_tenant_admin_cases := [
	# tenants.create is platform-only; its container (tenant "") is in no tenant: not found.
	["tenants.create", _tenants, 404],
	["tenants.get", _tenant, 200],
	["tenants.list", _tenants, 200],
	["tenants.list", _tenant, 200],
	["tenants.update", _tenant, 200],
	["teams.create", _new_team, 200],
	["teams.get", _team_b, 200],
	["teams.list", _tenant, 200],
	["teams.update", _team_b, 200],
	["teams.delete", _team_b, 200],
	["users.create", _new_user, 200],
	["users.get", _user_far, 200],
	["users.list", _tenant, 200],
	["users.update", _user_far, 200],
	["users.delete", _user_far, 200],
	["service_accounts.create", _new_sa_b, 200],
	["service_accounts.get", _sa_b, 200],
	["service_accounts.list", _tenant, 200],
	["service_accounts.update", _sa_b, 200],
	["service_accounts.delete", _sa_b, 200],
	["keys.create", _new_key_far, 200],
	["keys.get", _key_far, 200],
	["keys.list", _tenant, 200],
	["keys.update", _key_far, 200],
	["keys.rotate", _key_far, 200],
	["keys.revoke", _key_far, 200],
	["audit.list", _audit, 200],
]

test_tenant_admin_matrix if {
	every case in _tenant_admin_cases {
		_as_expected("tenant_admin", case)
	}
}

_team_admin_cases := [
	["tenants.create", _tenants, 404],
	["tenants.get", _tenant, 200],
	["tenants.list", _tenants, 200],
	["tenants.list", _tenant, 200],
	["tenants.update", _tenant, 403],
	["teams.create", _new_team, 403],
	["teams.get", _team_a, 200],
	["teams.get", _team_b, 200],
	["teams.list", _tenant, 200],
	["teams.update", _team_a, 200],
	["teams.update", _team_b, 403],
	["teams.delete", _team_a, 403],
	["teams.delete", _team_b, 403],
	["users.create", _new_user, 403],
	["users.get", _user_me, 200],
	["users.get", _user_far, 200],
	["users.list", _tenant, 200],
	["users.update", _user_far, 403],
	["users.delete", _user_far, 403],
	["service_accounts.create", _new_sa_a, 200],
	["service_accounts.create", _new_sa_b, 404],
	["service_accounts.get", _sa_a, 200],
	["service_accounts.get", _sa_b, 404],
	["service_accounts.list", _tenant, 200],
	["service_accounts.update", _sa_a, 200],
	["service_accounts.update", _sa_b, 404],
	["service_accounts.delete", _sa_a, 200],
	["service_accounts.delete", _sa_b, 404],
	["keys.create", _new_key_me, 200],
	["keys.create", _new_key_far, 404],
	["keys.get", _key_me, 200],
	["keys.get", _key_mid, 200],
	["keys.get", _key_far, 404],
	["keys.list", _tenant, 200],
	["keys.update", _key_mid, 200],
	["keys.update", _key_far, 404],
	["keys.rotate", _key_mid, 200],
	["keys.rotate", _key_far, 404],
	["keys.revoke", _key_mid, 200],
	["keys.revoke", _key_far, 404],
	["audit.list", _audit, 404],
]

test_team_admin_matrix if {
	every case in _team_admin_cases {
		_as_expected("team_admin", case)
	}
}

_developer_cases := [
	["tenants.create", _tenants, 404],
	["tenants.get", _tenant, 200],
	["tenants.list", _tenants, 200],
	["tenants.list", _tenant, 200],
	["tenants.update", _tenant, 403],
	["teams.create", _new_team, 403],
	["teams.get", _team_b, 200],
	["teams.list", _tenant, 200],
	["teams.update", _team_a, 403],
	["teams.delete", _team_a, 403],
	["users.create", _new_user, 404],
	["users.get", _user_me, 200],
	["users.get", _user_far, 404],
	["users.list", _tenant, 404],
	["users.update", _user_me, 403],
	["users.update", _user_far, 404],
	["users.delete", _user_me, 403],
	["users.delete", _user_far, 404],
	["service_accounts.create", _new_sa_a, 404],
	["service_accounts.get", _sa_a, 404],
	["service_accounts.list", _tenant, 404],
	["service_accounts.update", _sa_a, 404],
	["service_accounts.delete", _sa_a, 404],
	["keys.create", _new_key_me, 200],
	["keys.create", _new_key_far, 404],
	["keys.get", _key_me, 200],
	["keys.get", _key_mid, 404],
	["keys.get", _key_far, 404],
	["keys.list", _tenant, 200],
	["keys.update", _key_me, 200],
	["keys.update", _key_mid, 404],
	["keys.rotate", _key_me, 200],
	["keys.rotate", _key_mid, 404],
	["keys.revoke", _key_me, 200],
	["keys.revoke", _key_mid, 404],
	["keys.revoke", _key_far, 404],
	["audit.list", _audit, 404],
]

test_developer_matrix if {
	every case in _developer_cases {
		_as_expected("developer", case)
	}
}

_viewer_cases := [
	["tenants.create", _tenants, 404],
	["tenants.get", _tenant, 200],
	["tenants.list", _tenants, 200],
	["tenants.list", _tenant, 200],
	["tenants.update", _tenant, 403],
	["teams.create", _new_team, 403],
	["teams.get", _team_b, 200],
	["teams.list", _tenant, 200],
	["teams.update", _team_a, 403],
	["teams.delete", _team_a, 403],
	["users.create", _new_user, 404],
	["users.get", _user_me, 200],
	["users.get", _user_far, 404],
	["users.list", _tenant, 404],
	["users.update", _user_me, 403],
	["users.delete", _user_me, 403],
	["users.delete", _user_far, 404],
	["service_accounts.create", _new_sa_a, 404],
	["service_accounts.get", _sa_a, 404],
	["service_accounts.list", _tenant, 404],
	["service_accounts.delete", _sa_a, 404],
	["keys.create", _new_key_me, 403],
	["keys.create", _new_key_far, 404],
	["keys.get", _key_me, 200],
	["keys.get", _key_mid, 404],
	["keys.get", _key_far, 404],
	["keys.list", _tenant, 200],
	["keys.update", _key_me, 403],
	["keys.update", _key_mid, 404],
	["keys.rotate", _key_me, 403],
	["keys.revoke", _key_me, 403],
	["keys.revoke", _key_mid, 404],
	["audit.list", _audit, 404],
]

test_viewer_matrix if {
	every case in _viewer_cases {
		_as_expected("viewer", case)
	}
}

# -- cross-tenant: 404 for every role but platform_admin --------------------------------------

# Every action, on the other tenant's copy of its object (rego-cpp 1.5.2: an
# `every` nested in an `every` cannot use the outer variable, hence a function).
_not_found_elsewhere(role) if {
	every case in _platform_admin_cases {
		_decide(_me([role]), case[0], _elsewhere(case[1])) == _not_found
	}
}

test_cross_tenant_is_404_for_every_role_but_platform_admin if {
	every role in ["tenant_admin", "team_admin", "developer", "viewer"] {
		_not_found_elsewhere(role)
	}
	not _not_found_elsewhere("platform_admin")
}

test_cross_tenant_is_404_even_for_my_own_team_and_owner_ids if {
	# Same team id and owner id as the caller: only the tenant differs.
	_decide(_me(["team_admin"]), "keys.revoke", _elsewhere(_key_me)) == _not_found
	_decide(_me(["developer"]), "keys.get", _elsewhere(_key_me)) == _not_found
	_decide(_me(["team_admin"]), "teams.update", _elsewhere(_team_a)) == _not_found
	_decide(_me(["tenant_admin"]), "tenants.get", _tenant_2) == _not_found
}

_tenant_2 := _res("tenant", "ten_2", "", "", [])

test_cross_tenant_holds_with_several_roles if {
	roles := ["viewer", "developer", "team_admin", "tenant_admin"]
	_decide(_me(roles), "users.delete", _elsewhere(_user_far)) == _not_found
	_decide(_me(roles), "keys.list", _elsewhere(_tenant)) == _not_found
	_decide(_me(roles), "audit.list", _elsewhere(_audit)) == _not_found
}

test_cross_tenant_denial_is_exactly_the_default if {
	# Nothing tells "exists elsewhere" from "does not exist" or "malformed".
	d := _decide(_me(["tenant_admin"]), "keys.revoke", _elsewhere(_key_far))
	d == {"allow": false, "status": 404, "reason": "not found", "scope": ""}
	not contains(d.reason, "ten_2")
}

test_platform_admin_sees_every_tenant if {
	d := _decide(_me(["platform_admin"]), "users.delete", _elsewhere(_user_far))
	d == {"allow": true, "status": 200, "reason": "Allowed.", "scope": "all"}
}

# -- in-tenant: not readable → 404; readable but not allowed → 403 ---------------------------

test_in_tenant_out_of_scope_read_is_404 if {
	_decide(_me(["developer"]), "users.get", _user_far) == _not_found
	_decide(_me(["viewer"]), "keys.get", _key_mid) == _not_found
	_decide(_me(["team_admin"]), "service_accounts.get", _sa_b) == _not_found
	_decide(_me(["team_admin"]), "keys.get", _key_far) == _not_found
}

test_in_tenant_list_without_the_right_is_404 if {
	# For a list the read check is the list rule itself.
	_decide(_me(["developer"]), "users.list", _tenant) == _not_found
	_decide(_me(["viewer"]), "service_accounts.list", _tenant) == _not_found
	_decide(_me(["team_admin"]), "audit.list", _audit) == _not_found
}

test_write_on_an_unreadable_object_is_404 if {
	_decide(_me(["developer"]), "keys.revoke", _key_mid) == _not_found
	_decide(_me(["team_admin"]), "service_accounts.delete", _sa_b) == _not_found
	_decide(_me(["developer"]), "service_accounts.create", _new_sa_a) == _not_found
}

test_out_of_scope_write_on_a_readable_object_is_403 if {
	d := _decide(_me(["viewer"]), "keys.revoke", _key_me)
	d == {
		"allow": false, "status": 403, "scope": "",
		"reason": "Your roles do not allow keys.revoke on this API key.",
	}
	_decide(_me(["team_admin"]), "teams.update", _team_b).reason == "Your roles do not allow teams.update on this team."
	_decide(_me(["team_admin"]), "users.delete", _user_far).reason == "Your roles do not allow users.delete on this user."
	_decide(_me(["developer"]), "users.update", _user_me).reason == "Your roles do not allow users.update on this user."
	_decide(_me(["viewer"]), "tenants.update", _tenant).reason == "Your roles do not allow tenants.update on this tenant."
}

test_out_of_scope_write_keeps_the_callers_scope if {
	# team_admin may update teams (scope team), but not team_b.
	d := _decide(_me(["team_admin"]), "teams.update", _team_b)
	d.status == 403
	d.scope == "team"
}

test_create_without_the_right_is_403_here if {
	d := _decide(_me(["team_admin"]), "users.create", _new_user)
	d.status == 403
	d.reason == "Your roles do not allow users.create here."
	_decide(_me(["viewer"]), "keys.create", _new_key_me).reason == "Your roles do not allow keys.create here."
	_decide(_me(["developer"]), "teams.create", _new_team).status == 403
}

# -- scope rules ----------------------------------------------------------------------------

test_team_scope_needs_the_caller_to_act_in_a_team if {
	no_team := object.union(_me(["team_admin"]), {"team_id": ""})
	tenant_level_sa := _res("service_account", "ten_1", "", "sa_t", [])
	_decide(no_team, "service_accounts.get", tenant_level_sa) == _not_found
	_decide(no_team, "keys.revoke", _res("key", "ten_1", "", "usr_x", [])) == _not_found
	_decide(no_team, "teams.update", _res("team", "ten_1", "", "", [])).status == 403
}

test_team_scope_does_not_cover_tenant_level_objects if {
	tenant_level_sa := _res("service_account", "ten_1", "", "sa_t", [])
	_decide(_me(["team_admin"]), "service_accounts.update", tenant_level_sa) == _not_found
}

test_self_scope_needs_a_caller_id if {
	no_id := object.union(_me(["developer"]), {"id": ""})
	_decide(no_id, "keys.get", _res("key", "ten_1", "team_a", "", [])) == _not_found
}

test_self_scope_is_the_owner_not_the_team if {
	# developer: a key of another user in the same team is not "self".
	_decide(_me(["developer"]), "keys.rotate", _key_mid) == _not_found

	# and my own key in another team still is.
	my_key_elsewhere := _res("key", "ten_1", "team_b", "usr_me", [])
	_decide(_me(["developer"]), "keys.rotate", my_key_elsewhere).allow == true
}

test_tenant_scope_needs_a_caller_tenant if {
	no_tenant := object.union(_me(["tenant_admin"]), {"tenant_id": ""})
	_decide(no_tenant, "keys.get", _res("key", "", "team_a", "usr_me", [])) == _not_found
	_decide(no_tenant, "users.list", _res("tenant", "", "", "", [])) == _not_found
	_decide(no_tenant, "tenants.list", _tenants) == _not_found
}

test_service_account_caller_owns_its_keys if {
	sa := object.union(_me(["developer"]), {"kind": "service_account", "id": "sa_me"})
	_decide(sa, "keys.rotate", _res("key", "ten_1", "team_a", "sa_me", [])).allow == true
	_decide(sa, "keys.rotate", _key_me) == _not_found
}

test_scope_is_the_widest_of_the_callers_roles if {
	d := _decide(_me(["developer", "team_admin"]), "keys.revoke", _key_mid)
	d.allow == true
	d.scope == "team"
	_decide(_me(["viewer", "tenant_admin"]), "keys.revoke", _key_far).scope == "tenant"
	_decide(_me(["viewer", "platform_admin"]), "keys.revoke", _elsewhere(_key_far)).scope == "all"
}

test_only_the_widest_scope_is_checked if {
	# Roles' scopes are not merged: with team scope for keys, my own key in
	# another team is out of scope (the list filtered by "team" does not show it).
	my_key_elsewhere := _res("key", "ten_1", "team_b", "usr_me", [])
	_decide(_me(["developer", "team_admin"]), "keys.revoke", my_key_elsewhere) == _not_found
}

test_roles_the_policy_does_not_know_give_nothing if {
	_decide(_me(["admin"]), "tenants.get", _tenant) == _not_found
	_decide(_me(["Tenant_Admin", "tenant_admin "]), "keys.list", _tenant) == _not_found
	_decide(_me(["admin", "viewer"]), "keys.get", _key_me).allow == true
}

test_unknown_action_is_denied if {
	d := _decide(_me(["platform_admin"]), "keys.destroy", _key_me)
	d.allow == false
	d.status == 403
	d.scope == ""
	_decide(_me(["platform_admin"]), "keys.export.list", _tenant) == _not_found
}

# -- list scopes: what the service filters by ---------------------------------------------------

test_list_scope_per_role if {
	_decide(_me(["platform_admin"]), "keys.list", _tenant).scope == "all"
	_decide(_me(["tenant_admin"]), "keys.list", _tenant).scope == "tenant"
	_decide(_me(["team_admin"]), "keys.list", _tenant).scope == "team"
	_decide(_me(["developer"]), "keys.list", _tenant).scope == "self"
	_decide(_me(["viewer"]), "keys.list", _tenant).scope == "self"
	_decide(_me(["team_admin"]), "service_accounts.list", _tenant).scope == "team"
	_decide(_me(["team_admin"]), "users.list", _tenant).scope == "tenant"
	_decide(_me(["tenant_admin"]), "audit.list", _audit).scope == "tenant"
	_decide(_me(["platform_admin"]), "audit.list", _audit).scope == "all"
}

test_list_allowed_is_a_full_decision if {
	d := _decide(_me(["developer"]), "keys.list", _tenant)
	d == {"allow": true, "status": 200, "reason": "Allowed.", "scope": "self"}
}

test_list_scope_with_several_roles_is_the_widest if {
	_decide(_me(["developer", "team_admin"]), "keys.list", _tenant).scope == "team"
	_decide(_me(["team_admin", "viewer", "tenant_admin"]), "keys.list", _tenant).scope == "tenant"
	_decide(_me(["developer", "platform_admin"]), "keys.list", _tenant).scope == "all"
}

test_list_in_another_tenant if {
	_decide(_me(["tenant_admin"]), "keys.list", _tenant_2) == _not_found
	_decide(_me(["viewer"]), "teams.list", _tenant_2) == _not_found
	d := _decide(_me(["platform_admin"]), "keys.list", _tenant_2)
	d.allow == true
	d.scope == "all"
}

test_tenants_list_for_every_role if {
	# No container tenant: allowed for any scope, the service shows non-platform
	# callers only their own tenant.
	_decide(_me(["platform_admin"]), "tenants.list", _tenants).scope == "all"
	every role in ["tenant_admin", "team_admin", "developer", "viewer"] {
		d := _decide(_me([role]), "tenants.list", _tenants)
		d.allow == true
		d.scope == "tenant"
	}
	_decide(_me(["viewer"]), "tenants.list", _tenant_2) == _not_found
	_decide(_me(["admin"]), "tenants.list", _tenants) == _not_found
}

test_team_list_without_a_team_is_still_allowed_for_the_service_to_filter if {
	no_team := object.union(_me(["team_admin"]), {"team_id": ""})
	d := _decide(no_team, "keys.list", _tenant)
	d.allow == true
	d.scope == "team"
}

# -- admin API scope on the credential ------------------------------------------------------

test_credential_without_admin_scope_is_403 if {
	chat_only := object.union(_me(["tenant_admin"]), {"scopes": ["chat"]})
	d := _decide(chat_only, "keys.list", _tenant)
	d == {
		"allow": false, "status": 403, "scope": "tenant",
		"reason": "This API key is not scoped for the admin API.",
	}
	_decide(chat_only, "keys.revoke", _key_far).status == 403
	platform_chat := object.union(_me(["platform_admin"]), {"scopes": ["chat", "embeddings"]})
	_decide(platform_chat, "tenants.create", _tenants).reason == "This API key is not scoped for the admin API."
}

test_credential_with_admin_scope_or_no_scopes_passes if {
	every scopes in [[], ["admin"], ["chat", "admin"]] {
		_decide(object.union(_me(["tenant_admin"]), {"scopes": scopes}), "keys.list", _tenant).allow == true
	}
}

test_admin_scope_match_is_exact if {
	every scopes in [["Admin"], ["admin "], ["admins"], ["admin.read"]] {
		_decide(object.union(_me(["tenant_admin"]), {"scopes": scopes}), "keys.list", _tenant).status == 403
	}
}

test_admin_scope_is_checked_before_the_tenant if {
	# About the credential only: it confirms nothing about the object.
	chat_only := object.union(_me(["tenant_admin"]), {"scopes": ["chat"]})
	_decide(chat_only, "keys.get", _elsewhere(_key_far)).reason == "This API key is not scoped for the admin API."
}

test_admin_scope_is_not_asked_when_no_role_allows_the_action if {
	chat_only := object.union(_me(["viewer"]), {"scopes": ["chat"]})
	_decide(chat_only, "audit.list", _audit) == _not_found
	_decide(chat_only, "users.update", _user_me).reason == "Your roles do not allow users.update on this user."
}

# -- target outranks the caller ---------------------------------------------------------------

_admin_key := _res("key", "ten_1", "team_a", "usr_boss", ["platform_admin"])

_admin_user := _res("user", "ten_1", "team_a", "usr_boss", ["platform_admin"])

_admin_sa := _res("service_account", "ten_1", "team_a", "sa_boss", ["platform_admin"])

test_tenant_admin_cannot_change_a_platform_admin if {
	d := _decide(_me(["tenant_admin"]), "keys.revoke", _admin_key)
	d == {
		"allow": false, "status": 403, "scope": "tenant",
		"reason": "Cannot keys.revoke this API key: it holds a role above your own roles.",
	}
	every action in ["keys.update", "keys.rotate"] {
		_decide(_me(["tenant_admin"]), action, _admin_key).status == 403
	}
	every action in ["users.update", "users.delete"] {
		_decide(_me(["tenant_admin"]), action, _admin_user).status == 403
	}
	every action in ["service_accounts.update", "service_accounts.delete"] {
		_decide(_me(["tenant_admin"]), action, _admin_sa).status == 403
	}
	_decide(_me(["tenant_admin"]), "users.delete", _admin_user).reason == "Cannot users.delete this user: it holds a role above your own roles."
}

test_reads_are_not_subject_to_rank if {
	_decide(_me(["tenant_admin"]), "keys.get", _admin_key).allow == true
	_decide(_me(["tenant_admin"]), "users.get", _admin_user).allow == true
	_decide(_me(["team_admin"]), "service_accounts.get", _admin_sa).allow == true
}

test_equal_rank_may_be_changed if {
	peer := _res("user", "ten_1", "", "usr_peer", ["tenant_admin"])
	_decide(_me(["tenant_admin"]), "users.update", peer).allow == true
	_decide(_me(["platform_admin"]), "keys.revoke", _admin_key).allow == true
}

test_team_admin_cannot_change_a_tenant_admins_key if {
	boss_key := _res("key", "ten_1", "team_a", "usr_ta", ["tenant_admin"])
	d := _decide(_me(["team_admin"]), "keys.revoke", boss_key)
	d.status == 403
	d.scope == "team"
	_decide(_me(["team_admin"]), "keys.revoke", _res("key", "ten_1", "team_a", "usr_ta", ["team_admin"])).allow == true
}

test_rank_is_the_highest_role_on_both_sides if {
	mixed := _res("key", "ten_1", "team_a", "usr_x", ["viewer", "platform_admin", "developer"])
	_decide(_me(["tenant_admin"]), "keys.revoke", mixed).status == 403
	ta_key := _res("key", "ten_1", "team_a", "usr_x", ["viewer", "tenant_admin"])
	_decide(_me(["developer", "tenant_admin"]), "keys.revoke", ta_key).allow == true
}

test_target_with_an_unknown_role_outranks_everyone if {
	odd := _res("key", "ten_1", "team_a", "usr_x", ["viewer", "root"])
	_decide(_me(["tenant_admin"]), "keys.revoke", odd).status == 403
	_decide(_me(["platform_admin"]), "keys.revoke", odd).status == 403
	_decide(_me(["tenant_admin"]), "keys.get", odd).allow == true
}

test_unreadable_outranking_target_is_still_404 if {
	far_admin := _res("key", "ten_1", "team_b", "usr_boss", ["platform_admin"])
	_decide(_me(["team_admin"]), "keys.revoke", far_admin) == _not_found
	_decide(_me(["tenant_admin"]), "keys.revoke", _elsewhere(_admin_key)) == _not_found
}

test_scope_denial_comes_before_rank if {
	_decide(_me(["viewer"]), "users.update", object.union(_user_me, {"roles": ["platform_admin"]})).reason == "Your roles do not allow users.update on this user."
}

# -- grants: no escalation ------------------------------------------------------------------

test_cannot_grant_a_role_above_your_own if {
	d := _decide_grant(_me(["tenant_admin"]), "users.create", _new_user, _grant(["platform_admin"], [], []))
	d == {
		"allow": false, "status": 403, "scope": "tenant",
		"reason": "Cannot grant role platform_admin: it is above your own roles.",
	}
	_decide_grant(_me(["developer"]), "keys.create", _new_key_me, _grant(["team_admin"], [], [])).reason == "Cannot grant role team_admin: it is above your own roles."
	_decide_grant(_me(["team_admin"]), "service_accounts.create", _new_sa_a, _grant(["tenant_admin"], [], [])).status == 403
	_decide_grant(_me(["tenant_admin"]), "users.update", _user_far, _grant(["platform_admin"], [], [])).status == 403
	_decide_grant(_me(["developer"]), "keys.update", _key_me, _grant(["team_admin"], [], [])).status == 403
}

test_may_grant_your_own_roles_and_lower if {
	every roles in [[], ["viewer"], ["developer"], ["viewer", "developer"]] {
		_decide_grant(_me(["developer"]), "keys.create", _new_key_me, _grant(roles, [], [])).allow == true
	}
	_decide_grant(_me(["tenant_admin"]), "users.create", _new_user, _grant(["tenant_admin", "team_admin"], [], [])).allow == true
	_decide_grant(_me(["platform_admin"]), "users.create", _elsewhere(_new_user), _grant(["platform_admin"], [], [])).allow == true
	_decide_grant(_me(["viewer", "team_admin"]), "service_accounts.create", _new_sa_a, _grant(["team_admin"], [], [])).allow == true
}

test_cannot_grant_an_unknown_role if {
	d := _decide_grant(_me(["tenant_admin"]), "users.create", _new_user, _grant(["root"], [], []))
	d.status == 403
	d.reason == "Cannot grant role root: it is not a known role."
	_decide_grant(_me(["platform_admin"]), "users.create", _new_user, _grant(["Platform_Admin"], [], [])).status == 403
	_decide_grant(_me(["platform_admin"]), "keys.create", _new_key_me, _grant(["viewer", ""], [], [])).status == 403
}

test_grant_denial_names_the_first_offending_role if {
	# Unknown roles are reported before roles above the caller's.
	g := _grant(["viewer", "tenant_admin", "platform_admin"], [], [])
	_decide_grant(_me(["team_admin"]), "keys.create", _new_key_me, g).reason == "Cannot grant role tenant_admin: it is above your own roles."
	g2 := _grant(["platform_admin", "superuser"], [], [])
	_decide_grant(_me(["team_admin"]), "keys.create", _new_key_me, g2).reason == "Cannot grant role superuser: it is not a known role."
}

_scoped(roles, scopes, models) := object.union(_me(roles), {"scopes": scopes, "models": models})

test_restricted_caller_cannot_grant_every_api if {
	caller := _scoped(["developer"], ["admin", "chat"], [])
	d := _decide_grant(caller, "keys.create", _new_key_me, _grant(["developer"], [], []))
	d.status == 403
	startswith(d.reason, "Cannot grant API scopes beyond your own")
	d.scope == "self"
}

test_restricted_caller_may_grant_a_subset_of_its_apis if {
	caller := _scoped(["developer"], ["admin", "chat"], [])
	every scopes in [["chat"], ["admin"], ["admin", "chat"], ["chat", "chat"]] {
		_decide_grant(caller, "keys.create", _new_key_me, _grant(["developer"], scopes, [])).allow == true
	}
	every scopes in [["embeddings"], ["chat", "embeddings"], ["Chat"]] {
		_decide_grant(caller, "keys.create", _new_key_me, _grant(["developer"], scopes, [])).status == 403
	}
}

test_unrestricted_caller_may_grant_any_apis if {
	every scopes in [[], ["chat"], ["anything"]] {
		_decide_grant(_me(["developer"]), "keys.create", _new_key_me, _grant(["developer"], scopes, [])).allow == true
	}
}

test_restricted_caller_cannot_grant_every_model if {
	caller := _scoped(["developer"], [], ["gpt-4o"])
	d := _decide_grant(caller, "keys.create", _new_key_me, _grant(["developer"], [], []))
	d.status == 403
	startswith(d.reason, "Cannot grant models beyond your own")
	every models in [["other"], ["gpt-4o", "other"], ["GPT-4o"]] {
		_decide_grant(caller, "keys.create", _new_key_me, _grant(["developer"], [], models)).status == 403
	}
	_decide_grant(caller, "keys.create", _new_key_me, _grant(["developer"], [], ["gpt-4o"])).allow == true
}

test_unrestricted_caller_may_grant_any_models if {
	every models in [[], ["gpt-4o"], ["anything", "else"]] {
		_decide_grant(_me(["developer"]), "keys.create", _new_key_me, _grant(["developer"], [], models)).allow == true
	}
}

test_rotate_carries_the_old_keys_rights if {
	caller := _scoped(["developer"], ["admin", "chat"], ["gpt-4o"])
	same := _grant(["developer"], ["chat"], ["gpt-4o"])
	_decide_grant(caller, "keys.rotate", _key_me, same).allow == true
	wider := _grant(["developer"], ["chat"], [])
	_decide_grant(caller, "keys.rotate", _key_me, wider).status == 403
	_decide_grant(_me(["developer"]), "keys.rotate", _key_me, _grant(["tenant_admin"], [], [])).status == 403
}

test_grant_is_checked_after_readability_and_rank if {
	_decide_grant(_me(["developer"]), "keys.create", _new_key_far, _grant(["platform_admin"], [], [])) == _not_found
	_decide_grant(_me(["tenant_admin"]), "keys.update", _admin_key, _grant(["platform_admin"], [], [])).reason == "Cannot keys.update this API key: it holds a role above your own roles."
	_decide_grant(_me(["viewer"]), "keys.create", _new_key_me, _grant(["platform_admin"], [], [])).reason == "Your roles do not allow keys.create here."
}

test_roles_are_checked_before_scopes_and_models if {
	caller := _scoped(["developer"], ["admin"], ["gpt-4o"])
	_decide_grant(caller, "keys.create", _new_key_me, _grant(["tenant_admin"], [], [])).reason == "Cannot grant role tenant_admin: it is above your own roles."
	startswith(_decide_grant(caller, "keys.create", _new_key_me, _grant(["developer"], [], [])).reason, "Cannot grant API scopes")
	startswith(_decide_grant(caller, "keys.create", _new_key_me, _grant(["developer"], ["admin"], [])).reason, "Cannot grant models")
}

test_no_grant_no_grant_checks if {
	caller := _scoped(["tenant_admin"], ["admin"], ["gpt-4o"])
	_decide(caller, "users.update", _user_far).allow == true
}

# -- malformed input: the default 404 ------------------------------------------------------------

_base := _me(["tenant_admin"])

test_the_base_case_of_the_malformed_tests_is_allowed if {
	_decide(_base, "keys.revoke", _key_far).allow == true
	_decide_grant(_base, "keys.create", _new_key_far, _grant(["viewer"], [], [])).allow == true
}

test_no_input_is_the_default if {
	admin.decision == _not_found
}

test_missing_top_level_fields_are_404 if {
	principal := _base
	resource := _key_far
	no_principal := admin.decision with input.action as "keys.revoke" with input.resource as resource
	no_principal == _not_found
	no_action := admin.decision with input.principal as principal with input.resource as resource
	no_action == _not_found
	no_resource := admin.decision with input.principal as principal with input.action as "keys.revoke"
	no_resource == _not_found
}

test_bad_principal_is_404 if {
	every p in [null, "usr_me", [], 5, {}] {
		_decide(p, "keys.list", _tenant) == _not_found
	}
}

test_principal_without_roles_is_404 if {
	_decide(object.remove(_base, ["roles"]), "keys.list", _tenant) == _not_found
	every roles in [[], null, "tenant_admin", {"tenant_admin": true}] {
		_decide(object.union(_base, {"roles": roles}), "keys.list", _tenant) == _not_found
	}
}

test_principal_without_scopes_or_models_is_404 if {
	# Fail closed: a missing restriction list must not read as "everything".
	every field in ["scopes", "models", "id", "tenant_id", "team_id"] {
		_decide(object.remove(_base, [field]), "keys.list", _tenant) == _not_found
	}
	every field in ["scopes", "models", "id", "tenant_id", "team_id"] {
		_decide(object.union(_base, {field: null}), "keys.list", _tenant) == _not_found
	}
	_decide(object.union(_base, {"scopes": "chat"}), "keys.list", _tenant) == _not_found
	_decide(object.union(_base, {"models": "gpt-4o"}), "keys.list", _tenant) == _not_found
}

test_bad_action_is_404 if {
	every action in [null, 5, ["keys.list"], {"name": "keys.list"}] {
		_decide(_base, action, _tenant) == _not_found
	}
}

test_bad_resource_is_404 if {
	every r in [null, "key_1", [], {}] {
		_decide(_base, "keys.revoke", r) == _not_found
	}
	every field in ["type", "tenant_id", "team_id", "owner_id", "roles"] {
		_decide(_base, "keys.revoke", object.remove(_key_far, [field])) == _not_found
	}
	_decide(_base, "keys.revoke", object.union(_key_far, {"roles": "viewer"})) == _not_found
	_decide(_base, "keys.revoke", object.union(_key_far, {"tenant_id": 1})) == _not_found
}

test_unknown_resource_type_is_404 if {
	_decide(_base, "keys.revoke", object.union(_key_far, {"type": "widget"})) == _not_found
	_decide(_base, "keys.get", object.union(_key_far, {"type": "Key"})) == _not_found
}

test_bad_grant_is_404 if {
	every g in [null, false, "viewer", [], {}, {"roles": []}, {"roles": [], "scopes": []}] {
		_decide_grant(_base, "keys.create", _new_key_far, g) == _not_found
	}
	every g in [_grant("viewer", [], []), _grant([], null, []), _grant([], [], "x"), _grant([5], [], [])] {
		_decide_grant(_base, "keys.create", _new_key_far, g) == _not_found
	}
}

# -- data ----------------------------------------------------------------------------------

test_data_every_scope_and_role_is_ranked if {
	every role, actions in data.lockgate.admin.permissions {
		data.lockgate.admin.role_rank[role]
		every _, scope in actions {
			data.lockgate.admin.scope_rank[scope]
		}
	}
}

test_data_platform_admin_may_do_everything_everywhere if {
	every _, actions in data.lockgate.admin.permissions {
		every action, _ in actions {
			data.lockgate.admin.permissions.platform_admin[action] == "all"
		}
	}
	count(data.lockgate.admin.permissions.platform_admin) == 26
}

test_data_tenant_admin_may_do_everything_but_create_tenants if {
	platform := {action | data.lockgate.admin.permissions.platform_admin[action]}
	tenant := {action | data.lockgate.admin.permissions.tenant_admin[action]}
	tenant == platform - {"tenants.create"}
	every _, scope in data.lockgate.admin.permissions.tenant_admin {
		scope == "tenant"
	}
}

test_data_every_read_action_exists if {
	every _, action in data.lockgate.admin.read_action {
		data.lockgate.admin.permissions.platform_admin[action]
	}
}
