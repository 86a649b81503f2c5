# Tests of lockgate.approval (run: lockgate policy test, or pytest tests/unit/test_policies.py).
#
# rego-cpp 1.5.2 quirks shape these tests (see policies/README.md):
# * `with input as {…}` crashes when the rule under test uses other rules, so
#   `_ask` and `_may` replace the input field by field (`with input.principal as …`);
# * `with … as _rule` silently does nothing: values reach `with` as function
#   arguments or local variables.
#
# Fixtures: the API api_1 belongs to team_a of tenant ten_1; team_b is another team
# of ten_1; ten_2 (team_x) is a tenant the API may be shared with, ten_3 (team_y) is not.
package lockgate.approval_test

import data.lockgate.approval

_rejected := {"outcome": "rejected", "reason": "Denied by approval policy.", "justification_required": false}

_not_found := {"outcome": "rejected", "reason": "API not found", "justification_required": false}

_no_role := {"outcome": "rejected", "reason": "your roles do not allow subscribing", "justification_required": false}

_same_team := {"outcome": "approved", "reason": "same team", "justification_required": false}

_same_tenant := {"outcome": "pending", "reason": "same tenant: the API's owners approve subscriptions", "justification_required": false}

_cross := {"outcome": "pending", "reason": "another tenant: the API's owners approve subscriptions", "justification_required": true}

_too_short := {
	"outcome": "rejected", "justification_required": true,
	"reason": "a subscription from another tenant needs a justification of at least 20 characters",
}

# -- fixtures -------------------------------------------------------------------------

_api(visibility) := {
	"id": "api_1", "name": "support-bot", "kind": "prompt", "tenant_id": "ten_1",
	"owner_team_id": "team_a", "visibility": visibility, "shared_tenants": {"ten_2": true},
}

_public := _api("public")

_sub(tenant, team) := {"tenant_id": tenant, "team_id": team}

_team_a := _sub("ten_1", "team_a")

_team_b := _sub("ten_1", "team_b")

_team_x := _sub("ten_2", "team_x")

_team_y := _sub("ten_3", "team_y")

# A principal acting in the subscribing team.
_member(subscriber, roles) := {
	"id": "usr_me", "kind": "user", "tenant_id": subscriber.tenant_id,
	"team_id": subscriber.team_id, "roles": roles,
}

_dev(subscriber) := _member(subscriber, ["developer"])

_req(justification) := {"version": "", "justification": justification}

_why := "We resell support answers to our customers."

_ask(principal, api, subscriber, request) := d if {
	d := approval.decision with input.principal as principal
		with input.api as api
		with input.subscriber as subscriber
		with input.request as request
}

# A developer of `subscriber` asks, with a good justification.
_asks(api, subscriber) := _ask(_dev(subscriber), api, subscriber, _req(_why))

# -- same team --------------------------------------------------------------------------------

test_same_team_is_approved_whatever_the_visibility if {
	every visibility in ["private", "team", "tenant", "shared", "public"] {
		_asks(_api(visibility), _team_a) == _same_team
	}
	_ask(_dev(_team_a), _api("private"), _team_a, _req("")) == _same_team
}

test_same_team_pending_when_not_auto_approved if {
	d := _ask_auto_same_team(false)
	d == {"outcome": "pending", "reason": "same team: the API's owners approve subscriptions", "justification_required": false}
}

_ask_auto_same_team(value) := d if {
	p := _dev(_team_a)
	a := _public
	s := _team_a
	r := _req("")
	d := approval.decision with input.principal as p
		with input.api as a
		with input.subscriber as s
		with input.request as r
		with data.lockgate.approval.auto_approve_same_team as value
}

test_same_team_needs_the_owner_tenant if {
	# The owner team's id in another tenant is another team.
	other := _sub("ten_2", "team_a")
	_asks(_api("shared"), other) == _cross
	_asks(_api("private"), other) == _not_found
}

# -- same tenant ------------------------------------------------------------------------------

test_same_tenant_is_pending if {
	every visibility in ["tenant", "shared", "public"] {
		_asks(_api(visibility), _team_b) == _same_tenant
	}
	_ask(_dev(_team_b), _public, _team_b, _req("")) == _same_tenant
}

_ask_kinds(kind, kinds) := d if {
	p := _dev(_team_b)
	a := object.union(_public, {"kind": kind})
	s := _team_b
	r := _req("")
	d := approval.decision with input.principal as p
		with input.api as a
		with input.subscriber as s
		with input.request as r
		with data.lockgate.approval.auto_approve_same_tenant_kinds as kinds
}

test_same_tenant_auto_approval_by_kind if {
	kinds := {"model": true, "prompt": false}
	_ask_kinds("model", kinds) == {"outcome": "approved", "reason": "same tenant", "justification_required": false}
	_ask_kinds("prompt", kinds) == _same_tenant
	_ask_kinds("agent", kinds) == _same_tenant
}

test_same_tenant_auto_approval_needs_true if {
	every kinds in [{"model": "true"}, {"model": 1}, {"model": null}, {"Model": true}, {}] {
		_ask_kinds("model", kinds) == _same_tenant
	}
}

test_shipped_data_auto_approves_no_kind if {
	every kind in ["model", "prompt"] {
		_asks(object.union(_public, {"kind": kind}), _team_b) == _same_tenant
	}
}

test_auto_approval_by_kind_is_only_for_the_same_tenant if {
	p := _dev(_team_x)
	a := object.union(_public, {"kind": "model"})
	s := _team_x
	r := _req(_why)
	kinds := {"model": true}
	d := approval.decision with input.principal as p
		with input.api as a
		with input.subscriber as s
		with input.request as r
		with data.lockgate.approval.auto_approve_same_tenant_kinds as kinds
	d == _cross
}

# -- another tenant ----------------------------------------------------------------------------

test_cross_tenant_with_a_justification_is_pending if {
	_asks(_public, _team_x) == _cross
	_asks(_api("shared"), _team_x) == _cross
}

test_cross_tenant_without_a_justification_is_rejected if {
	_ask(_dev(_team_x), _public, _team_x, _req("")) == _too_short
	_ask(_dev(_team_x), _public, _team_x, _req("please")) == _too_short
}

test_cross_tenant_justification_length_boundary if {
	twenty := "abcdefghijklmnopqrst"
	count(twenty) == 20
	_ask(_dev(_team_x), _public, _team_x, _req(twenty)) == _cross
	_ask(_dev(_team_x), _public, _team_x, _req(substring(twenty, 0, 19))) == _too_short
}

test_cross_tenant_justification_is_trimmed if {
	padded := "  abcdefghijklmnopqrs \n"
	count(padded) > 20
	_ask(_dev(_team_x), _public, _team_x, _req(padded)) == _too_short
	_ask(_dev(_team_x), _public, _team_x, _req("                         ")) == _too_short
}

test_cross_tenant_justification_counts_characters if {
	_ask(_dev(_team_x), _public, _team_x, _req("éééééééééééééééééééé")) == _cross
	_ask(_dev(_team_x), _public, _team_x, _req("ééééééééééééééééééé")) == _too_short
}

_ask_required(value, min_chars, justification) := d if {
	p := _dev(_team_x)
	a := _public
	s := _team_x
	r := _req(justification)
	d := approval.decision with input.principal as p
		with input.api as a
		with input.subscriber as s
		with input.request as r
		with data.lockgate.approval.justification_required_cross_tenant as value
		with data.lockgate.approval.min_justification_chars as min_chars
}

test_cross_tenant_justification_minimum_comes_from_data if {
	_ask_required(true, 5, "abcde") == _cross
	d := _ask_required(true, 5, "abcd")
	d == {
		"outcome": "rejected", "justification_required": true,
		"reason": "a subscription from another tenant needs a justification of at least 5 characters",
	}
}

test_cross_tenant_justification_not_required if {
	d := _ask_required(false, 20, "")
	d == {"outcome": "pending", "reason": "another tenant: the API's owners approve subscriptions", "justification_required": false}
}

test_justification_is_not_asked_in_the_tenant if {
	_ask(_dev(_team_b), _public, _team_b, _req("")).justification_required == false
	_ask(_dev(_team_a), _public, _team_a, _req("")).justification_required == false
}

# -- visibility --------------------------------------------------------------------------------

test_public_is_visible_to_anyone if {
	_asks(_public, _team_y) == _cross
}

test_shared_is_visible_to_the_owner_tenant_and_shared_tenants if {
	_asks(_api("shared"), _team_b) == _same_tenant
	_asks(_api("shared"), _team_x) == _cross
	_asks(_api("shared"), _team_y) == _not_found
}

test_shared_tenants_need_true if {
	every shared in [{"ten_2": "true"}, {"ten_2": 1}, {"ten_2": false}, {"TEN_2": true}, {}] {
		_asks(object.union(_api("shared"), {"shared_tenants": shared}), _team_x) == _not_found
	}
}

test_shared_tenants_only_count_for_shared_apis if {
	every visibility in ["private", "team", "tenant"] {
		_asks(_api(visibility), _team_x) == _not_found
	}
}

test_tenant_visibility_is_the_owner_tenant if {
	_asks(_api("tenant"), _team_b) == _same_tenant
	_asks(_api("tenant"), _team_y) == _not_found
}

test_team_visibility_is_the_owner_team if {
	_asks(_api("team"), _team_a) == _same_team
	_asks(_api("team"), _team_b) == _not_found
	_asks(_api("team"), _team_y) == _not_found
}

test_private_is_only_the_owner_team if {
	_asks(_api("private"), _team_a) == _same_team
	_asks(_api("private"), _team_b) == _not_found
	_asks(_api("private"), _team_x) == _not_found
}

test_unknown_visibility_is_visible_to_no_one if {
	every visibility in ["internal", "Public", "", "public "] {
		_asks(_api(visibility), _team_a) == _not_found
		_asks(_api(visibility), _team_x) == _not_found
	}
}

test_not_found_says_nothing_more if {
	# Exactly the document an unknown API gets, with or without a justification.
	_ask(_dev(_team_y), _api("private"), _team_y, _req("")) == _not_found
	_ask(_dev(_team_y), _api("private"), _team_y, _req(_why)) == _not_found
}

# -- roles ------------------------------------------------------------------------------------

test_developer_or_above_may_subscribe if {
	every roles in [["developer"], ["team_admin"], ["tenant_admin"], ["platform_admin"], ["viewer", "developer"]] {
		_ask(_member(_team_b, roles), _public, _team_b, _req("")) == _same_tenant
	}
}

test_viewer_may_not_subscribe if {
	every roles in [["viewer"], ["admin"], ["Developer"], ["developer "], [null, 2]] {
		_ask(_member(_team_b, roles), _public, _team_b, _req("")) == _no_role
	}
}

test_principal_must_act_in_the_subscribing_team if {
	# Another team of the tenant, the same team id in another tenant, no team at all:
	# even tenant and platform admins subscribe a team only when acting in it.
	every p in [
		_member(_team_a, ["team_admin"]),
		_member(_sub("ten_2", "team_b"), ["developer"]),
		_member(_sub("ten_1", ""), ["tenant_admin"]),
		_member(_sub("ten_9", ""), ["platform_admin"]),
	] {
		_ask(p, _public, _team_b, _req(_why)) == _no_role
	}
}

test_roles_are_checked_before_visibility if {
	# A viewer learns nothing about an API it cannot see.
	_ask(_member(_team_y, ["viewer"]), _api("private"), _team_y, _req("")) == _no_role
	_ask(_member(_team_y, ["viewer"]), _public, _team_y, _req("")) == _no_role
}

_ask_ranks(roles, ranks) := d if {
	p := _member(_team_b, roles)
	a := _public
	s := _team_b
	r := _req("")
	d := approval.decision with input.principal as p
		with input.api as a
		with input.subscriber as s
		with input.request as r
		with data.lockgate.approval.role_rank as ranks
}

test_rank_comes_from_data if {
	ranks := object.union(data.lockgate.approval.role_rank, {"integrator": 2})
	_ask_ranks(["integrator"], ranks) == _same_tenant
	_ask_ranks(["viewer"], object.union(ranks, {"developer": 1})) == _same_tenant
	_ask_ranks(["integrator"], data.lockgate.approval.role_rank) == _no_role
}

# -- malformed input: the default ------------------------------------------------------------

test_no_input_is_the_default if {
	approval.decision == _rejected
}

test_missing_top_level_fields_are_the_default if {
	p := _dev(_team_b)
	a := _public
	s := _team_b
	r := _req("")
	no_principal := approval.decision with input.api as a with input.subscriber as s with input.request as r
	no_principal == _rejected
	no_api := approval.decision with input.principal as p with input.subscriber as s with input.request as r
	no_api == _rejected
	no_subscriber := approval.decision with input.principal as p with input.api as a with input.request as r
	no_subscriber == _rejected
	no_request := approval.decision with input.principal as p with input.api as a with input.subscriber as s
	no_request == _rejected
	_ask(p, a, s, r) == _same_tenant
}

test_bad_top_level_objects_are_the_default if {
	every x in [null, "x", [], 5, {}] {
		_ask(x, _public, _team_b, _req("")) == _rejected
		_ask(_dev(_team_b), x, _team_b, _req("")) == _rejected
		_ask(_dev(_team_b), _public, x, _req("")) == _rejected
		_ask(_dev(_team_b), _public, _team_b, x) == _rejected
	}
}

test_missing_nested_fields_are_the_default if {
	every field in ["tenant_id", "team_id", "roles"] {
		_ask(object.remove(_dev(_team_b), [field]), _public, _team_b, _req("")) == _rejected
	}
	every field in ["kind", "tenant_id", "owner_team_id", "visibility", "shared_tenants"] {
		_ask(_dev(_team_b), object.remove(_public, [field]), _team_b, _req("")) == _rejected
	}
	every field in ["tenant_id", "team_id"] {
		_ask(_dev(_team_b), _public, object.remove(_team_b, [field]), _req("")) == _rejected
	}
	every field in ["version", "justification"] {
		_ask(_dev(_team_b), _public, _team_b, object.remove(_req(""), [field])) == _rejected
	}
}

test_fields_not_read_are_not_required if {
	p := object.remove(_dev(_team_b), ["id", "kind"])
	_ask(p, object.remove(_public, ["id", "name"]), _team_b, _req("")) == _same_tenant
}

test_mistyped_fields_are_the_default if {
	every roles in [[], "developer", null, {"developer": true}] {
		_ask(_member(_team_b, roles), _public, _team_b, _req("")) == _rejected
	}
	every fields in [{"kind": null}, {"tenant_id": 1}, {"tenant_id": ""}, {"owner_team_id": null}, {"visibility": null}, {"shared_tenants": ["ten_2"]}, {"shared_tenants": null}] {
		_asks(object.union(_public, fields), _team_b) == _rejected
	}
	every s in [_sub("ten_1", ""), _sub("", "team_b"), _sub("ten_1", 5), _sub(null, "team_b")] {
		_ask(_dev(_team_b), _public, s, _req("")) == _rejected
	}
	every r in [{"version": null, "justification": ""}, {"version": "", "justification": 5}, {"version": "", "justification": null}] {
		_ask(_dev(_team_b), _public, _team_b, r) == _rejected
	}
}

_ask_min_chars(min_chars) := d if {
	p := _dev(_team_x)
	a := _public
	s := _team_x
	r := _req(_why)
	d := approval.decision with input.principal as p
		with input.api as a
		with input.subscriber as s
		with input.request as r
		with data.lockgate.approval.min_justification_chars as min_chars
}

test_malformed_data_is_the_default if {
	every n in ["20", null, -1, 2.5] {
		_ask_min_chars(n) == _rejected
	}
	_ask_min_chars(0) == _cross
	_ask_auto_same_team("true") == _rejected
	_ask_auto_same_team(null) == _rejected
	_ask_required("false", 20, _why) == _rejected
	_ask_kinds("model", null) == _rejected
	_ask_ranks(["developer"], {"developer": 2}) == _rejected
}

# -- may_decide -------------------------------------------------------------------------------

_may_denied := {"allow": false, "reason": "Denied by approval policy."}

_owner_api := {"id": "api_1", "tenant_id": "ten_1", "owner_team_id": "team_a"}

_who(tenant, team, roles) := {"id": "usr_me", "kind": "user", "tenant_id": tenant, "team_id": team, "roles": roles}

_may(principal, api, action) := d if {
	d := approval.may_decide with input.principal as principal
		with input.api as api
		with input.action as action
}

_may_sub(principal, api, action, subscriber) := d if {
	d := approval.may_decide with input.principal as principal
		with input.api as api
		with input.action as action
		with input.subscriber as subscriber
}

_deciders := [
	[_who("ten_1", "team_a", ["team_admin"]), "Allowed: team_admin of the API's owner team."],
	[_who("ten_1", "team_a", ["viewer", "team_admin"]), "Allowed: team_admin of the API's owner team."],
	[_who("ten_1", "", ["tenant_admin"]), "Allowed: tenant_admin of the API's tenant."],
	[_who("ten_1", "team_b", ["tenant_admin"]), "Allowed: tenant_admin of the API's tenant."],
	[_who("ten_9", "", ["platform_admin"]), "Allowed: platform_admin."],
	[_who("ten_1", "team_a", ["developer", "platform_admin"]), "Allowed: platform_admin."],
]

_decides_everything(case) if {
	every action in ["approve", "reject", "revoke"] {
		_may(case[0], _owner_api, action) == {"allow": true, "reason": case[1]}
	}
}

test_may_decide_owner_admins if {
	every case in _deciders {
		_decides_everything(case)
	}
}

_owners_only := "only the API's owner team (team_admin or above), a tenant_admin of its tenant or a platform_admin may "

_revokers_only := "only the API's owner team (team_admin or above), a tenant_admin of its tenant, a platform_admin or the subscribing team (developer or above) may revoke this subscription"

_decides_nothing(p) if {
	_may(p, _owner_api, "approve") == {"allow": false, "reason": concat("", [_owners_only, "approve subscriptions"])}
	_may(p, _owner_api, "reject") == {"allow": false, "reason": concat("", [_owners_only, "reject subscriptions"])}
	_may(p, _owner_api, "revoke") == {"allow": false, "reason": _revokers_only}
}

test_may_not_decide if {
	every p in [
		_who("ten_1", "team_a", ["developer"]),
		_who("ten_1", "team_a", ["viewer"]),
		_who("ten_1", "team_b", ["team_admin"]),
		_who("ten_1", "", ["team_admin"]),
		_who("ten_2", "team_a", ["team_admin"]), # same team id, other tenant
		_who("ten_2", "", ["tenant_admin"]),
		_who("", "team_a", ["tenant_admin"]),
		_who("ten_1", "team_a", ["admin", "Team_Admin"]),
	] {
		_decides_nothing(p)
	}
}

test_owner_team_needs_a_team if {
	api := object.union(_owner_api, {"owner_team_id": ""})
	_may(_who("ten_1", "", ["team_admin"]), api, "approve").allow == false
	_may(_who("ten_1", "", ["tenant_admin"]), api, "approve").allow == true
}

test_subscribing_team_may_revoke_its_subscription if {
	sub := {"team_id": "team_x"}
	d := _may_sub(_who("ten_2", "team_x", ["developer"]), _owner_api, "revoke", sub)
	d == {"allow": true, "reason": "Allowed: the subscribing team may revoke its own subscription."}
	_may_sub(_who("ten_2", "team_x", ["team_admin"]), _owner_api, "revoke", sub).allow == true
	_may_sub(_who("ten_2", "team_x", ["developer"]), _owner_api, "revoke", {"team_id": "team_x", "tenant_id": "ten_2"}).allow == true
}

test_subscribing_team_may_not_approve_or_reject if {
	sub := {"team_id": "team_x"}
	p := _who("ten_2", "team_x", ["team_admin"])
	_may_sub(p, _owner_api, "approve", sub) == {"allow": false, "reason": concat("", [_owners_only, "approve subscriptions"])}
	_may_sub(p, _owner_api, "reject", sub).allow == false
}

test_subscriber_revoke_needs_developer_in_that_team if {
	sub := {"team_id": "team_x"}
	_may_sub(_who("ten_2", "team_x", ["viewer"]), _owner_api, "revoke", sub) == {"allow": false, "reason": _revokers_only}
	_may_sub(_who("ten_2", "team_y", ["team_admin"]), _owner_api, "revoke", sub).allow == false
	_may_sub(_who("ten_2", "", ["developer"]), _owner_api, "revoke", {"team_id": ""}).allow == false
	_may(_who("ten_2", "team_x", ["developer"]), _owner_api, "revoke").allow == false
}

test_subscriber_revoke_checks_the_tenant_when_given if {
	sub := {"team_id": "team_x", "tenant_id": "ten_3"}
	_may_sub(_who("ten_2", "team_x", ["developer"]), _owner_api, "revoke", sub).allow == false
}

test_unknown_action_is_denied if {
	every action in ["delete", "Approve", "approve ", ""] {
		d := _may(_who("ten_9", "", ["platform_admin"]), _owner_api, action)
		d == {"allow": false, "reason": concat("", ["unknown action: ", action])}
	}
}

test_may_decide_no_input_is_the_default if {
	approval.may_decide == _may_denied
}

test_may_decide_malformed_is_the_default if {
	admin := _who("ten_9", "", ["platform_admin"])
	api := _owner_api
	no_principal := approval.may_decide with input.api as api with input.action as "approve"
	no_principal == _may_denied
	no_api := approval.may_decide with input.principal as admin with input.action as "approve"
	no_api == _may_denied
	no_action := approval.may_decide with input.principal as admin with input.api as api
	no_action == _may_denied
	every action in [null, 1, ["approve"]] {
		_may(admin, api, action) == _may_denied
	}
	every field in ["tenant_id", "team_id", "roles"] {
		_may(object.remove(admin, [field]), api, "approve") == _may_denied
	}
	_may(_who("ten_9", "", []), api, "approve") == _may_denied
	every field in ["tenant_id", "owner_team_id"] {
		_may(admin, object.remove(api, [field]), "approve") == _may_denied
	}
	every sub in [null, "team_x", [], {}, {"team_id": 1}, {"team_id": "team_x", "tenant_id": 2}, {"team_id": "team_x", "tenant_id": null}] {
		_may_sub(admin, api, "revoke", sub) == _may_denied
	}
}

# -- data -------------------------------------------------------------------------------------

test_data_values if {
	data.lockgate.approval.auto_approve_same_team == true
	data.lockgate.approval.auto_approve_same_tenant_kinds == {"model": false, "prompt": false}
	data.lockgate.approval.justification_required_cross_tenant == true
	data.lockgate.approval.min_justification_chars == 20
}

test_data_role_rank_is_the_admin_policys if {
	data.lockgate.approval.role_rank == data.lockgate.admin.role_rank
}
