# Tests of lockgate.lifecycle (run: lockgate policy test, or pytest tests/unit/test_policies.py).
#
# rego-cpp 1.5.2 quirks shape these tests (see policies/README.md):
# * `with input as {…}` crashes when the rule under test uses other rules, so
#   `_decide` replaces the input field by field (`with input.principal as …`);
# * `with … as _rule` silently does nothing: values reach `with` as function
#   arguments or local variables;
# * a comparison nested in a comparison is undefined when false: write two conditions.
#
# Fixtures: the API api_1 belongs to team_a of tenant ten_1; ten_2 is another
# tenant. Times are integer nanoseconds around _now.
package lockgate.lifecycle_test

import data.lockgate.lifecycle

_now := 1790000000000000000

_day := 86400000000000

_sec := 1000000000

_denied := {"allow": false, "status": 403, "reason": "Denied by lifecycle policy."}

_ok := {"allow": true, "status": 200, "reason": "Allowed."}

# -- fixtures -------------------------------------------------------------------------

_who(tenant, team, roles) := {"id": "usr_me", "kind": "user", "tenant_id": tenant, "team_id": team, "roles": roles}

_owner_admin := _who("ten_1", "team_a", ["team_admin"])

_platform := _who("ten_9", "", ["platform_admin"])

_prompt_api := {
	"id": "api_1", "name": "support-bot", "kind": "prompt", "tenant_id": "ten_1",
	"owner_team_id": "team_a", "description": "Answers support tickets.",
}

_model_api := object.union(_prompt_api, {"kind": "model"})

_draft := {
	"version": "v2", "state": "draft", "description": "Second version.",
	"has_input_schema": true, "sunset_ns": 0, "successor": "", "successor_state": "",
	"breaking_changes": [], "major_bump": false,
}

# Deprecation request: a sunset just far enough ahead, a published successor.
_published := object.union(_draft, {
	"state": "published", "sunset_ns": _now + (30 * _day),
	"successor": "v3", "successor_state": "published",
})

# Retirement request: sunset passed yesterday.
_deprecated := object.union(_published, {"state": "deprecated", "sunset_ns": _now - _day})

_publish := {"from": "draft", "to": "published"}

_deprecate := {"from": "published", "to": "deprecated"}

_retire := {"from": "deprecated", "to": "retired"}

_retire_published := {"from": "published", "to": "retired"}

_decide_at(principal, api, version, transition, now, last_call, force, reason) := d if {
	d := lifecycle.decision with input.principal as principal
		with input.api as api
		with input.version as version
		with input.transition as transition
		with input.now_ns as now
		with input.last_call_ns as last_call
		with input.force as force
		with input.reason as reason
}

# At _now, never called, not forced.
_decide(principal, api, version, transition) := _decide_at(principal, api, version, transition, _now, 0, false, "")

_v(base, fields) := object.union(base, fields)

# A retirement at _now of a version last called `last_call`.
_retire_called(last_call) := _decide_at(_owner_admin, _prompt_api, _deprecated, _retire, _now, last_call, false, "")

_forced(principal, version, transition, reason) := _decide_at(principal, _prompt_api, version, transition, _now, _now - _sec, true, reason)

_reason(d) := d.reason

# The same decisions with one data value replaced (arguments, not rules, reach `with`).
_decide_min_days(version, n) := d if {
	p := _owner_admin
	a := _prompt_api
	t := _deprecate
	now := _now
	d := lifecycle.decision with input.principal as p
		with input.api as a
		with input.version as version
		with input.transition as t
		with input.now_ns as now
		with input.last_call_ns as 0
		with input.force as false
		with input.reason as ""
		with data.lockgate.lifecycle.deprecation_min_days as n
}

_retire_quiet_days(last_call, n) := d if {
	p := _owner_admin
	a := _prompt_api
	v := _deprecated
	t := _retire
	now := _now
	d := lifecycle.decision with input.principal as p
		with input.api as a
		with input.version as v
		with input.transition as t
		with input.now_ns as now
		with input.last_call_ns as last_call
		with input.force as false
		with input.reason as ""
		with data.lockgate.lifecycle.retirement_quiet_days as n
}

_publish_ranks(principal, ranks) := d if {
	a := _prompt_api
	v := _draft
	t := _publish
	now := _now
	d := lifecycle.decision with input.principal as principal
		with input.api as a
		with input.version as v
		with input.transition as t
		with input.now_ns as now
		with input.last_call_ns as 0
		with input.force as false
		with input.reason as ""
		with data.lockgate.lifecycle.role_rank as ranks
}

# -- publish --------------------------------------------------------------------------------

test_publish_allowed if {
	_decide(_owner_admin, _prompt_api, _draft, _publish) == _ok
	_decide(_owner_admin, _model_api, _draft, _publish) == _ok
}

test_publish_description_from_the_version_or_the_api if {
	_decide(_owner_admin, object.union(_prompt_api, {"description": ""}), _draft, _publish) == _ok
	_decide(_owner_admin, _prompt_api, _v(_draft, {"description": ""}), _publish) == _ok
}

test_publish_without_any_description_is_400 if {
	api := object.union(_prompt_api, {"description": ""})
	d := _decide(_owner_admin, api, _v(_draft, {"description": ""}), _publish)
	d == {"allow": false, "status": 400, "reason": "a version needs a description to be published (on the version or on its API)"}

	# Blank is none.
	blank_api := object.union(_prompt_api, {"description": " \t\n"})
	_decide(_owner_admin, blank_api, _v(_draft, {"description": "   "}), _publish).status == 400
}

test_publish_prompt_needs_an_input_schema if {
	d := _decide(_owner_admin, _prompt_api, _v(_draft, {"has_input_schema": false}), _publish)
	d == {"allow": false, "status": 400, "reason": "a prompt API's version needs an input schema to be published"}
}

test_publish_model_needs_no_input_schema if {
	_decide(_owner_admin, _model_api, _v(_draft, {"has_input_schema": false}), _publish) == _ok
}

test_publish_breaking_change_needs_a_major_bump if {
	v := _v(_draft, {"breaking_changes": ["field `ticket_id` removed", "field `lang` is now required"]})
	d := _decide(_owner_admin, _prompt_api, v, _publish)
	d == {
		"allow": false, "status": 400,
		"reason": "breaking input schema change needs a new major version: field `ticket_id` removed",
	}
	_decide(_owner_admin, _model_api, v, _publish).status == 400
}

test_publish_breaking_change_with_a_major_bump_is_allowed if {
	v := _v(_draft, {"breaking_changes": ["field `ticket_id` removed"], "major_bump": true})
	_decide(_owner_admin, _prompt_api, v, _publish) == _ok
	_decide(_owner_admin, _prompt_api, _v(_draft, {"major_bump": true}), _publish) == _ok
}

test_publish_rules_in_order if {
	api := object.union(_prompt_api, {"description": ""})
	everything_wrong := _v(_draft, {"description": "", "has_input_schema": false, "breaking_changes": ["x"]})
	startswith(_decide(_owner_admin, api, everything_wrong, _publish).reason, "a version needs a description")
	no_schema := _v(everything_wrong, {"description": "v"})
	startswith(_decide(_owner_admin, api, no_schema, _publish).reason, "a prompt API's version needs an input schema")
}

# -- deprecate --------------------------------------------------------------------------------

test_deprecate_allowed if {
	_decide(_owner_admin, _prompt_api, _published, _deprecate) == _ok
	far := _v(_published, {"sunset_ns": _now + (365 * _day)})
	_decide(_owner_admin, _prompt_api, far, _deprecate) == _ok
}

_too_soon := {"allow": false, "status": 400, "reason": "the sunset date must be at least 30 days ahead"}

test_deprecate_sunset_boundary_is_exact if {
	# Exactly 30 days (the fixture) is enough; 1 ns or 1 s less is not.
	_decide(_owner_admin, _prompt_api, _v(_published, {"sunset_ns": (_now + (30 * _day)) - 1}), _deprecate) == _too_soon
	_decide(_owner_admin, _prompt_api, _v(_published, {"sunset_ns": (_now + (30 * _day)) - _sec}), _deprecate) == _too_soon
	_decide(_owner_admin, _prompt_api, _v(_published, {"sunset_ns": (_now + (30 * _day)) + 1}), _deprecate) == _ok
}

test_deprecate_boundary_with_the_clock_moving if {
	# Same sunset, asked 1 ns later: no longer 30 days ahead.
	d := _decide_at(_owner_admin, _prompt_api, _published, _deprecate, _now + 1, 0, false, "")
	d == _too_soon
}

test_deprecate_needs_a_sunset if {
	_decide(_owner_admin, _prompt_api, _v(_published, {"sunset_ns": 0}), _deprecate) == _too_soon
	_decide(_owner_admin, _prompt_api, _v(_published, {"sunset_ns": _now - _day}), _deprecate) == _too_soon
	_decide(_owner_admin, _prompt_api, _v(_published, {"sunset_ns": _now}), _deprecate) == _too_soon
}

test_deprecate_minimum_comes_from_data if {
	d := _decide_min_days(_published, 31)
	d == {"allow": false, "status": 400, "reason": "the sunset date must be at least 31 days ahead"}
	_decide_min_days(_v(_published, {"sunset_ns": _now + _day}), 2).reason == "the sunset date must be at least 2 days ahead"
	_decide_min_days(_v(_published, {"sunset_ns": _now + _day}), 1) == _ok
	_decide_min_days(_v(_published, {"sunset_ns": (_now + _day) - 1}), 1).reason == "the sunset date must be at least 1 day ahead"
}

test_deprecate_needs_a_successor if {
	d := _decide(_owner_admin, _prompt_api, _v(_published, {"successor": "", "successor_state": ""}), _deprecate)
	d == {"allow": false, "status": 400, "reason": "a deprecation needs a successor version"}
}

test_deprecate_successor_is_not_itself if {
	d := _decide(_owner_admin, _prompt_api, _v(_published, {"successor": "v2"}), _deprecate)
	d == {"allow": false, "status": 400, "reason": "a version cannot be its own successor"}
}

test_deprecate_successor_must_exist if {
	d := _decide(_owner_admin, _prompt_api, _v(_published, {"successor_state": ""}), _deprecate)
	d == {"allow": false, "status": 400, "reason": "the successor version v3 does not exist"}
}

test_deprecate_successor_must_be_published if {
	d := _decide(_owner_admin, _prompt_api, _v(_published, {"successor_state": "draft"}), _deprecate)
	d == {"allow": false, "status": 400, "reason": "the successor version v3 is draft, not published"}
	every state in ["deprecated", "retired", "Published", "published "] {
		_decide(_owner_admin, _prompt_api, _v(_published, {"successor_state": state}), _deprecate).status == 400
	}
}

test_deprecate_sunset_is_checked_before_the_successor if {
	v := _v(_published, {"sunset_ns": 0, "successor": ""})
	_decide(_owner_admin, _prompt_api, v, _deprecate) == _too_soon
}

# -- retire -----------------------------------------------------------------------------------

test_retire_allowed if {
	_retire_called(0) == _ok
	_retire_called(_now - (15 * _day)) == _ok
}

test_retire_sunset_boundary_is_exact if {
	# now == sunset is enough; 1 ns or 1 s before is not.
	at := _v(_deprecated, {"sunset_ns": _now})
	_decide(_owner_admin, _prompt_api, at, _retire) == _ok
	ns_early := _decide(_owner_admin, _prompt_api, _v(_deprecated, {"sunset_ns": _now + 1}), _retire)
	ns_early == {"allow": false, "status": 400, "reason": "the sunset date has not passed: retirement is possible in 1 day"}
	_decide(_owner_admin, _prompt_api, _v(_deprecated, {"sunset_ns": _now + _sec}), _retire).status == 400
}

_in_days(ns) := _reason(_decide(_owner_admin, _prompt_api, _v(_deprecated, {"sunset_ns": _now + ns}), _retire))

test_retire_days_to_sunset_round_up if {
	_in_days(3 * _day) == "the sunset date has not passed: retirement is possible in 3 days"
	_in_days((3 * _day) - 1) == "the sunset date has not passed: retirement is possible in 3 days"
	_in_days((3 * _day) + 1) == "the sunset date has not passed: retirement is possible in 4 days"
	_in_days((365 * _day) - 1) == "the sunset date has not passed: retirement is possible in 365 days"
}

test_retire_needs_a_sunset if {
	d := _decide(_owner_admin, _prompt_api, _v(_deprecated, {"sunset_ns": 0}), _retire)
	d == {"allow": false, "status": 400, "reason": "this version has no sunset date"}
}

test_retire_quiet_boundary_is_exact if {
	# Last called exactly 14 days ago: quiet enough; 1 ns or 1 s later: not.
	_retire_called(_now - (14 * _day)) == _ok
	d := _retire_called((_now - (14 * _day)) + 1)
	d == {"allow": false, "status": 400, "reason": "subscribers called this version 13 days ago; retirement needs 14 quiet days"}
	_retire_called((_now - (14 * _day)) + _sec).reason == "subscribers called this version 13 days ago; retirement needs 14 quiet days"
}

test_retire_quiet_reason_counts_whole_days if {
	_retire_called(_now - (3 * _day)).reason == "subscribers called this version 3 days ago; retirement needs 14 quiet days"
	_retire_called((_now - (4 * _day)) + 1).reason == "subscribers called this version 3 days ago; retirement needs 14 quiet days"
	_retire_called(_now - _day).reason == "subscribers called this version 1 day ago; retirement needs 14 quiet days"
	_retire_called((_now - _day) + 1).reason == "subscribers called this version less than a day ago; retirement needs 14 quiet days"
	_retire_called(_now).reason == "subscribers called this version less than a day ago; retirement needs 14 quiet days"
}

test_retire_call_in_the_future_is_not_quiet if {
	# Clock skew: a call after `now` counts as just now.
	_retire_called(_now + _day).reason == "subscribers called this version less than a day ago; retirement needs 14 quiet days"
}

test_retire_quiet_days_are_exact_over_long_spans if {
	# floor((365 days - 1 ns) / 1 day) would be 365 through a double: whole days are exact.
	d := _retire_quiet_days((_now - (365 * _day)) + 1, 400)
	d.reason == "subscribers called this version 364 days ago; retirement needs 400 quiet days"
	_retire_quiet_days(_now - (365 * _day), 400).reason == "subscribers called this version 365 days ago; retirement needs 400 quiet days"
	_retire_quiet_days(_now - (400 * _day), 400) == _ok
	_retire_quiet_days(_now, 0) == _ok
}

test_retire_sunset_is_checked_before_quiet_days if {
	v := _v(_deprecated, {"sunset_ns": _now + _day})
	d := _decide_at(_owner_admin, _prompt_api, v, _retire, _now, _now - _sec, false, "")
	startswith(d.reason, "the sunset date has not passed")
}

# -- forced retirement ---------------------------------------------------------------------------

test_forced_retirement_by_a_platform_admin if {
	d := _forced(_platform, _deprecated, _retire, "incident 4711: data leak")
	d == {"allow": true, "status": 200, "reason": "forced: incident 4711: data leak"}
	early := _v(_deprecated, {"sunset_ns": _now + (60 * _day)})
	_forced(_platform, early, _retire, "legal hold").reason == "forced: legal hold"
	_forced(_platform, _v(_deprecated, {"sunset_ns": 0}), _retire, "x").allow == true
}

test_forced_retirement_reason_is_echoed_as_given if {
	_forced(_platform, _deprecated, _retire, " legal hold\n").reason == "forced:  legal hold\n"
	_forced(_platform, _deprecated, _retire, "ticket \"42\" \\ ok").reason == "forced: ticket \"42\" \\ ok"
}

test_forced_retirement_needs_a_reason if {
	every reason in ["", " ", "\t\n"] {
		_forced(_platform, _deprecated, _retire, reason) == {"allow": false, "status": 400, "reason": "a forced retirement needs a reason"}
	}
}

test_forced_retirement_needs_a_platform_admin if {
	d := _forced(_owner_admin, _deprecated, _retire, "incident")
	d == {
		"allow": false, "status": 403,
		"reason": "subscribers called this version less than a day ago; retirement needs 14 quiet days; only a platform admin may force a retirement",
	}
	every p in [_who("ten_1", "", ["tenant_admin"]), _who("ten_1", "team_a", ["tenant_admin", "team_admin"])] {
		_forced(p, _deprecated, _retire, "incident").status == 403
	}
}

test_platform_admin_without_force_follows_the_rules if {
	d := _decide_at(_platform, _prompt_api, _deprecated, _retire, _now, _now - _sec, false, "incident")
	d.status == 400
	startswith(d.reason, "subscribers called this version")
}

test_force_is_not_needed_when_the_rules_hold if {
	# A due retirement is allowed as such (not "forced"), whoever sets `force`.
	_decide_at(_platform, _prompt_api, _deprecated, _retire, _now, 0, true, "tidy up") == _ok
	_decide_at(_owner_admin, _prompt_api, _deprecated, _retire, _now, 0, true, "") == _ok
}

test_published_to_retired_only_forced if {
	not_forced := "cannot move a published version to retired unless a platform admin forces its retirement"
	_decide(_owner_admin, _prompt_api, _published, _retire_published) == {"allow": false, "status": 400, "reason": not_forced}
	_decide(_platform, _prompt_api, _published, _retire_published).reason == not_forced
	_forced(_owner_admin, _published, _retire_published, "x") == {
		"allow": false, "status": 403,
		"reason": concat("", [not_forced, "; only a platform admin may force a retirement"]),
	}
	_forced(_platform, _published, _retire_published, "") == {"allow": false, "status": 400, "reason": "a forced retirement needs a reason"}
	_forced(_platform, _published, _retire_published, "security incident") == {"allow": true, "status": 200, "reason": "forced: security incident"}
}

test_force_does_not_open_other_transitions if {
	every t in [{"from": "draft", "to": "retired"}, {"from": "retired", "to": "published"}, {"from": "draft", "to": "deprecated"}] {
		_forced(_platform, _v(_draft, {"state": t.from}), t, "because").status == 400
	}

	# nor skip the publish rules.
	no_schema := _v(_draft, {"has_input_schema": false})
	_forced(_platform, no_schema, _publish, "because").status == 400
}

# -- transitions ------------------------------------------------------------------------------

test_transitions_not_allowed_at_all if {
	every t in [
		["draft", "deprecated"], ["draft", "retired"], ["draft", "draft"],
		["published", "draft"], ["published", "published"],
		["deprecated", "draft"], ["deprecated", "published"], ["deprecated", "deprecated"],
		["retired", "draft"], ["retired", "published"], ["retired", "deprecated"], ["retired", "retired"],
		["archived", "retired"], ["draft", "Published"], ["", ""],
	] {
		d := _decide(_platform, _prompt_api, _v(_draft, {"state": t[0]}), {"from": t[0], "to": t[1]})
		d == {"allow": false, "status": 400, "reason": concat("", ["cannot move a ", t[0], " version to ", t[1]])}
	}
}

test_the_spec_example_reason if {
	d := _decide(_owner_admin, _prompt_api, _draft, {"from": "draft", "to": "retired"})
	d.reason == "cannot move a draft version to retired"
}

test_transition_must_start_from_the_current_state if {
	d := _decide(_owner_admin, _prompt_api, _draft, _deprecate)
	d == {"allow": false, "status": 400, "reason": "this version is draft, not published"}
	_decide(_owner_admin, _prompt_api, _published, _publish).reason == "this version is published, not draft"
	_decide(_owner_admin, _prompt_api, _published, _retire).reason == "this version is published, not deprecated"
	_decide(_platform, _prompt_api, _v(_published, {"state": "retired"}), _deprecate).status == 400
}

# -- who ---------------------------------------------------------------------------------------

_not_allowed := {
	"allow": false, "status": 403,
	"reason": "only the API's owner team (team_admin or above), a tenant_admin of its tenant or a platform_admin may change the state of its versions",
}

test_who_may_manage if {
	every p in [
		_owner_admin,
		_who("ten_1", "team_a", ["tenant_admin"]),
		_who("ten_1", "team_a", ["viewer", "team_admin"]),
		_who("ten_1", "", ["tenant_admin"]),
		_who("ten_1", "team_b", ["tenant_admin"]),
		_platform,
		_who("ten_2", "team_x", ["platform_admin"]),
		_who("ten_1", "team_a", ["developer", "platform_admin"]),
	] {
		_decide(p, _prompt_api, _draft, _publish) == _ok
	}
}

test_who_may_not_manage if {
	every p in [
		_who("ten_1", "team_a", ["developer"]),
		_who("ten_1", "team_a", ["viewer"]),
		_who("ten_1", "team_a", ["viewer", "developer"]),
		_who("ten_1", "team_b", ["team_admin"]),
		_who("ten_1", "", ["team_admin"]),
		_who("ten_2", "team_a", ["team_admin"]), # same team id, other tenant
		_who("ten_2", "team_x", ["tenant_admin"]),
		_who("", "team_a", ["team_admin"]),
		_who("ten_1", "team_a", ["admin", "Team_Admin", "team_admin "]),
		_who("ten_1", "team_a", [5, null, {"team_admin": true}]),
	] {
		_decide(p, _prompt_api, _draft, _publish) == _not_allowed
	}
}

test_owner_team_needs_a_team if {
	# An API without an owner team is not managed by principals acting in no team.
	api := object.union(_prompt_api, {"owner_team_id": ""})
	_decide(_who("ten_1", "", ["team_admin"]), api, _draft, _publish) == _not_allowed
	_decide(_who("ten_1", "", ["tenant_admin"]), api, _draft, _publish) == _ok
}

test_who_is_checked_before_the_rules if {
	# Nothing about the version (last calls, successors) is told to others.
	dev := _who("ten_1", "team_a", ["developer"])
	_decide_at(dev, _prompt_api, _deprecated, _retire, _now, _now - _sec, false, "") == _not_allowed
	_decide(dev, _prompt_api, _draft, {"from": "draft", "to": "retired"}) == _not_allowed
	_decide(_who("ten_2", "team_x", ["tenant_admin"]), _prompt_api, _v(_published, {"successor_state": ""}), _deprecate) == _not_allowed
	_forced(_who("ten_2", "", ["tenant_admin"]), _deprecated, _retire, "x") == _not_allowed
}

test_rank_comes_from_data if {
	# A role is as strong as its rank: a new role ranked like team_admin manages too,
	ranks := object.union(data.lockgate.lifecycle.role_rank, {"release_manager": 3})
	_publish_ranks(_who("ten_1", "team_a", ["release_manager"]), ranks) == _ok
	_publish_ranks(_who("ten_1", "team_a", ["developer"]), ranks) == _not_allowed

	# and the thresholds are the ranks of team_admin, tenant_admin and platform_admin.
	lower := object.union(data.lockgate.lifecycle.role_rank, {"team_admin": 2})
	_publish_ranks(_who("ten_1", "team_a", ["developer"]), lower) == _ok
	_publish_ranks(_who("ten_1", "team_b", ["developer"]), lower) == _not_allowed
}

# -- malformed input: the default -------------------------------------------------------------

test_no_input_is_the_default if {
	lifecycle.decision == _denied
}

test_missing_top_level_fields_are_the_default if {
	p := _owner_admin
	a := _prompt_api
	v := _deprecated
	t := _retire
	now := _now
	no_now := lifecycle.decision with input.principal as p
		with input.api as a
		with input.version as v
		with input.transition as t
		with input.last_call_ns as 0
		with input.force as false
		with input.reason as ""
	no_now == _denied
	no_principal := lifecycle.decision with input.api as a
		with input.version as v
		with input.transition as t
		with input.now_ns as now
		with input.last_call_ns as 0
		with input.force as false
		with input.reason as ""
	no_principal == _denied
	no_force := lifecycle.decision with input.principal as p
		with input.api as a
		with input.version as v
		with input.transition as t
		with input.now_ns as now
		with input.last_call_ns as 0
		with input.reason as ""
	no_force == _denied
	no_last_call := lifecycle.decision with input.principal as p
		with input.api as a
		with input.version as v
		with input.transition as t
		with input.now_ns as now
		with input.force as false
		with input.reason as ""
	no_last_call == _denied
	no_reason := lifecycle.decision with input.principal as p
		with input.api as a
		with input.version as v
		with input.transition as t
		with input.now_ns as now
		with input.last_call_ns as 0
		with input.force as false
	no_reason == _denied

	# The same, complete, is allowed.
	_decide(p, a, v, t) == _ok
}

test_bad_top_level_objects_are_the_default if {
	every x in [null, "x", [], 5, {}] {
		_decide(x, _prompt_api, _draft, _publish) == _denied
		_decide(_owner_admin, x, _draft, _publish) == _denied
		_decide(_owner_admin, _prompt_api, x, _publish) == _denied
		_decide(_owner_admin, _prompt_api, _draft, x) == _denied
	}
}

test_missing_nested_fields_are_the_default if {
	every field in ["tenant_id", "team_id", "roles"] {
		_decide(object.remove(_owner_admin, [field]), _prompt_api, _draft, _publish) == _denied
	}
	every field in ["kind", "tenant_id", "owner_team_id", "description"] {
		_decide(_owner_admin, object.remove(_prompt_api, [field]), _draft, _publish) == _denied
	}
	every field in object.keys(_draft) {
		_decide(_owner_admin, _prompt_api, object.remove(_draft, [field]), _publish) == _denied
	}
	_decide(_owner_admin, _prompt_api, _draft, {"from": "draft"}) == _denied
	_decide(_owner_admin, _prompt_api, _draft, {"to": "published"}) == _denied
}

test_principal_id_and_api_name_are_not_read if {
	_decide(object.remove(_owner_admin, ["id", "kind"]), object.remove(_prompt_api, ["id", "name"]), _draft, _publish) == _ok
}

test_mistyped_fields_are_the_default if {
	_decide(_who("ten_1", "team_a", []), _prompt_api, _draft, _publish) == _denied
	_decide(_who("ten_1", "team_a", "team_admin"), _prompt_api, _draft, _publish) == _denied
	_decide(_who("ten_1", null, ["team_admin"]), _prompt_api, _draft, _publish) == _denied
	every kind in ["agent", "Model", "", null] {
		_decide(_owner_admin, object.union(_prompt_api, {"kind": kind}), _draft, _publish) == _denied
	}
	every fields in [
		{"has_input_schema": "yes"}, {"has_input_schema": null}, {"major_bump": 1},
		{"breaking_changes": "x"}, {"breaking_changes": [1]}, {"breaking_changes": [null]},
		{"sunset_ns": -1}, {"sunset_ns": "0"}, {"sunset_ns": 1.5}, {"sunset_ns": null},
		{"successor": null}, {"successor_state": 3}, {"description": null}, {"state": null},
		{"version": 2},
	] {
		_decide(_owner_admin, _prompt_api, _v(_draft, fields), _publish) == _denied
	}
	_decide(_owner_admin, _prompt_api, _draft, {"from": "draft", "to": null}) == _denied
}

test_mistyped_times_and_flags_are_the_default if {
	every now in [0, -1, 1.5, "1790000000000000000", null] {
		_decide_at(_owner_admin, _prompt_api, _draft, _publish, now, 0, false, "") == _denied
	}
	every last_call in [-1, 0.5, "0", null] {
		_decide_at(_owner_admin, _prompt_api, _deprecated, _retire, _now, last_call, false, "") == _denied
	}
	every force in ["true", 1, null] {
		_decide_at(_platform, _prompt_api, _deprecated, _retire, _now, _now, force, "x") == _denied
	}
	every reason in [null, 1, ["x"]] {
		_decide_at(_platform, _prompt_api, _deprecated, _retire, _now, _now, true, reason) == _denied
	}
}

test_times_beyond_int64_are_exact if {
	# rego-cpp integers do not wrap: a huge sunset is just far ahead.
	big := _v(_published, {"sunset_ns": 18446744073709551616})
	_decide(_owner_admin, _prompt_api, big, _deprecate) == _ok
}

test_malformed_data_is_the_default if {
	every n in ["30", null, -1, 1.5] {
		_decide_min_days(_published, n) == _denied
		_retire_quiet_days(0, n) == _denied
	}
	_publish_ranks(_platform, {}) == _denied
	_publish_ranks(_platform, {"team_admin": 3, "tenant_admin": 4}) == _denied
	_publish_ranks(_platform, {"team_admin": 3, "tenant_admin": 4, "platform_admin": "5"}) == _denied
}

# -- data -------------------------------------------------------------------------------------

test_data_values if {
	data.lockgate.lifecycle.deprecation_min_days == 30
	data.lockgate.lifecycle.retirement_quiet_days == 14
}

test_data_role_rank_is_the_admin_policys if {
	data.lockgate.lifecycle.role_rank == data.lockgate.admin.role_rank
}
