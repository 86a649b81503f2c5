# API lifecycle: may this version of an API change state?
#
# Asked by the registry service before it publishes, deprecates or retires a
# version of an API, through the embedded engine (lockgate/policy.py): entry
# point `lockgate/lifecycle/decision`.
#
# Input document (every field below is read by a rule and is required; the policy
# denies with the default document when one is missing or has the wrong type;
# fields it does not read, such as principal.id or api.name, are ignored):
#
#   {
#     "principal": {                       # who asks
#       "id": "usr_…", "kind": "user",     # (not read)
#       "tenant_id": "ten_…",
#       "team_id": "team_…",               # the team the credential acts in; "" = none
#       "roles": ["team_admin"]            # effective roles; at least one
#     },
#     "api": {
#       "id": "api_…", "name": "support-bot",   # (not read)
#       "kind": "model",                   # "model" | "prompt"
#       "tenant_id": "ten_…",
#       "owner_team_id": "team_…",
#       "description": "…"
#     },
#     "version": {
#       "version": "v2",
#       "state": "draft",                  # its current state: must equal transition.from
#       "description": "…",
#       "has_input_schema": true,          # prompt APIs: an input schema is set
#       "sunset_ns": 0,                    # integer ns since the epoch; 0 = none. For a
#                                          # deprecation: the requested sunset
#       "successor": "v3",                 # deprecation: the named successor ("" = none)
#       "successor_state": "published",    # the successor's current state ("" = no such version)
#       "breaking_changes": ["…"],         # strings: vs the previous published version of
#                                          # the same major line
#       "major_bump": false                # this version's major is above every earlier one
#     },
#     "transition": {"from": "draft", "to": "published"},
#     "now_ns": 1790000000000000000,       # integer ns since the epoch, > 0
#     "last_call_ns": 0,                   # integer ns: latest call of this version by any
#                                          # subscriber; 0 = never
#     "force": false,                      # a forced retirement (platform_admin only) …
#     "reason": ""                         # … and why (not blank; shown back as "forced: <reason>")
#   }
#
# Times are integer nanoseconds, not RFC 3339 strings: rego-cpp 1.5.2's
# time.parse_rfc3339_ns is undefined for "…Z" and fractional seconds. Integer
# +, -, * and comparisons are exact at this size; `/` is not (it goes through a
# double: floor((365 days - 1 ns) / 1 day) is 365), so whole days are computed
# with `%` (on non-negative numbers only) and an exact division.
#
# Data (data.json beside this file, mounted at data.lockgate.lifecycle):
#
#   deprecation_min_days:  n        a deprecation's sunset is at least n days ahead
#   retirement_quiet_days: n        a retirement needs n days without a subscriber call
#   role_rank: {role: n}            viewer 1 … platform_admin 5 (as in lockgate/admin)
#
# Transitions: draft → published, published → deprecated, deprecated → retired, and
# published → retired only as a forced retirement by a platform_admin.
#
# Who: a principal of the API's tenant acting in its owner team with a role of
# rank ≥ team_admin; a principal of the API's tenant with rank ≥ tenant_admin; a
# platform_admin (any tenant).
#
# Output: decision = {"allow": bool, "status": 200|400|403, "reason": str}.
# 400: the version does not meet the rule (the caller can fix the input); 403: the
# principal may not do it. The first match wins:
#
#   default 403     malformed input (or data): "Denied by lifecycle policy."
#   403             the principal may not manage the API's versions
#   400             not a transition at all: "cannot move a <from> version to <to>"
#   400             transition.from is not version.state
#   publish  400    no description (neither version's nor API's, blank = none); a prompt
#                   API without an input schema; breaking changes without a major bump
#                   ("breaking input schema change needs a new major version: <first>")
#   deprecate 400   sunset_ns < now_ns + deprecation_min_days days ("the sunset date must
#                   be at least 30 days ahead"); no successor; the version itself as its
#                   successor; a successor that does not exist or is not published
#   retire          allowed when the version is deprecated, has a sunset (sunset_ns > 0),
#                   now_ns ≥ sunset_ns and (last_call_ns == 0 or now_ns - last_call_ns ≥
#                   retirement_quiet_days days); otherwise, with force == true:
#                   403 not a platform_admin ("<what failed>; only a platform admin may
#                   force a retirement"), 400 blank reason, else 200 "forced: <reason>"
#                   (the reason as given);
#                   without force: 400 naming the first condition that failed ("subscribers
#                   called this version 3 days ago; retirement needs 14 quiet days")
#   200 Allowed.    otherwise
#
# Reasons are shown to clients: build them with concat (rego-cpp 1.5.2's
# sprintf("%s") quotes strings made by other built-ins, and its sprintf("%d")
# truncates large integers: numbers go through format_int). Never put a string made
# by trim / trim_space in the output: rego-cpp 1.5.2 does not escape it.
package lockgate.lifecycle

# METADATA
# title: Lifecycle decision
# description: >-
#   May this API version change state? Input: {principal: {tenant_id, team_id,
#   roles}, api: {kind, tenant_id, owner_team_id, description}, version: {version,
#   state, description, has_input_schema, sunset_ns, successor, successor_state,
#   breaking_changes, major_bump}, transition: {from, to}, now_ns, last_call_ns,
#   force, reason}. Output: {allow, status, reason}; denied (403) unless a rule allows.
# entrypoint: true
default decision := {"allow": false, "status": 403, "reason": "Denied by lifecycle policy."}

decision := _denied if {
	not _well_formed
} else := _forbid("only the API's owner team (team_admin or above), a tenant_admin of its tenant or a platform_admin may change the state of its versions") if {
	not _may_manage
} else := _invalid(concat("", ["cannot move a ", _from, " version to ", _to])) if {
	not _moves[_from][_to]
} else := _invalid(concat("", ["this version is ", input.version.state, ", not ", _from])) if {
	input.version.state != _from
} else := _invalid("a version needs a description to be published (on the version or on its API)") if {
	_publishing
	not _described
} else := _invalid("a prompt API's version needs an input schema to be published") if {
	_publishing
	not _schema_ok
} else := _invalid(concat("", ["breaking input schema change needs a new major version: ", input.version.breaking_changes[0]])) if {
	_publishing
	not _breaking_ok
} else := _allowed("Allowed.") if {
	_publishing
	_described
	_schema_ok
	_breaking_ok
} else := _invalid(concat("", ["the sunset date must be at least ", _days_text(_min_days), " ahead"])) if {
	_deprecating
	not _sunset_far_enough
} else := _invalid("a deprecation needs a successor version") if {
	_deprecating
	input.version.successor == ""
} else := _invalid("a version cannot be its own successor") if {
	_deprecating
	input.version.successor == input.version.version
} else := _invalid(concat("", ["the successor version ", input.version.successor, " does not exist"])) if {
	_deprecating
	input.version.successor_state == ""
} else := _invalid(concat("", ["the successor version ", input.version.successor, " is ", input.version.successor_state, ", not published"])) if {
	_deprecating
	input.version.successor_state != "published"
} else := _allowed("Allowed.") if {
	_deprecating
	_sunset_far_enough
	_successor_ok
} else := _allowed("Allowed.") if {
	_retiring
	_retirement_due
} else := _invalid(_retire_blocker) if {
	_retiring
	input.force != true
} else := _forbid(concat("", [_retire_blocker, "; only a platform admin may force a retirement"])) if {
	_retiring
	not _platform_admin
} else := _invalid("a forced retirement needs a reason") if {
	_retiring
	not _force_reason
} else := _allowed(concat("", ["forced: ", input.reason])) if {
	_retiring
	input.force == true
	_platform_admin
	_force_reason
}

_denied := {"allow": false, "status": 403, "reason": "Denied by lifecycle policy."}

_allowed(reason) := {"allow": true, "status": 200, "reason": reason}

_invalid(reason) := {"allow": false, "status": 400, "reason": reason}

_forbid(reason) := {"allow": false, "status": 403, "reason": reason}

# from → to; published → retired only as a forced retirement (see _retire_blocker).
_moves := {
	"draft": {"published": true},
	"published": {"deprecated": true, "retired": true},
	"deprecated": {"retired": true},
}

_from := input.transition.from

_to := input.transition.to

_publishing if {
	_from == "draft"
	_to == "published"
}

_deprecating if {
	_from == "published"
	_to == "deprecated"
}

_retiring if _to == "retired"

# -- input shape ----------------------------------------------------------------------

_well_formed if {
	_data_ok
	is_object(input.principal)
	is_string(input.principal.tenant_id)
	is_string(input.principal.team_id)
	is_array(input.principal.roles)
	count(input.principal.roles) > 0
	is_object(input.api)
	_api_kinds[input.api.kind]
	is_string(input.api.tenant_id)
	is_string(input.api.owner_team_id)
	is_string(input.api.description)
	is_object(input.version)
	is_string(input.version.version)
	is_string(input.version.state)
	is_string(input.version.description)
	is_boolean(input.version.has_input_schema)
	_ns(input.version.sunset_ns)
	is_string(input.version.successor)
	is_string(input.version.successor_state)
	is_array(input.version.breaking_changes)
	every change in input.version.breaking_changes {
		is_string(change) # named in reasons
	}
	is_boolean(input.version.major_bump)
	is_object(input.transition)
	is_string(input.transition.from)
	is_string(input.transition.to)
	_ns(input.now_ns)
	input.now_ns > 0
	_ns(input.last_call_ns)
	is_boolean(input.force)
	is_string(input.reason)
}

_api_kinds := {"model": true, "prompt": true}

# A time in integer nanoseconds (≥ 0).
_ns(x) if {
	is_number(x)
	floor(x) == x
	x >= 0
}

_data_ok if {
	_whole(_min_days)
	_whole(_quiet_days)
	is_number(_rank_of("team_admin"))
	is_number(_rank_of("tenant_admin"))
	is_number(_rank_of("platform_admin"))
}

_whole(x) if {
	is_number(x)
	floor(x) == x
	x >= 0
}

# -- who ------------------------------------------------------------------------------

_rank_of(role) := data.lockgate.lifecycle.role_rank[role]

# The principal's highest role rank (0 when no role has a rank).
_rank := max(array.concat([0], [rank |
	some role in input.principal.roles
	rank := data.lockgate.lifecycle.role_rank[role]
]))

_platform_admin if _rank >= _rank_of("platform_admin")

_in_api_tenant if {
	input.principal.tenant_id != ""
	input.principal.tenant_id == input.api.tenant_id
}

_in_owner_team if {
	_in_api_tenant
	input.principal.team_id != ""
	input.principal.team_id == input.api.owner_team_id
}

_may_manage if _platform_admin

_may_manage if {
	_in_api_tenant
	_rank >= _rank_of("tenant_admin")
}

_may_manage if {
	_in_owner_team
	_rank >= _rank_of("team_admin")
}

# -- publish --------------------------------------------------------------------------

_described if trim_space(input.version.description) != ""

_described if trim_space(input.api.description) != ""

_schema_ok if input.api.kind == "model"

_schema_ok if input.version.has_input_schema == true

_breaking_ok if count(input.version.breaking_changes) == 0

_breaking_ok if input.version.major_bump == true

# -- deprecate ------------------------------------------------------------------------

_day := 86400000000000 # ns

_min_days := data.lockgate.lifecycle.deprecation_min_days

_quiet_days := data.lockgate.lifecycle.retirement_quiet_days

_sunset_far_enough if input.version.sunset_ns >= input.now_ns + (_min_days * _day)

_successor_ok if {
	input.version.successor != ""
	input.version.successor != input.version.version
	input.version.successor_state == "published"
}

# -- retire ---------------------------------------------------------------------------

# Retirement without force: deprecated, past a sunset that was set, and quiet long enough.
_retirement_due if {
	_from == "deprecated"
	input.version.sunset_ns > 0
	input.now_ns >= input.version.sunset_ns
	_quiet
}

_quiet if input.last_call_ns == 0

_quiet if {
	input.last_call_ns > 0
	input.now_ns - input.last_call_ns >= _quiet_days * _day
}

# The first condition of _retirement_due that fails.
_retire_blocker := "cannot move a published version to retired unless a platform admin forces its retirement" if {
	_from != "deprecated"
} else := "this version has no sunset date" if {
	input.version.sunset_ns == 0
} else := concat("", ["the sunset date has not passed: retirement is possible in ", _days_text(_ceil_days(input.version.sunset_ns - input.now_ns))]) if {
	input.now_ns < input.version.sunset_ns
} else := concat("", ["subscribers called this version ", _ago(input.now_ns - input.last_call_ns), "; retirement needs ", format_int(_quiet_days, 10), " quiet days"]) if {
	not _quiet
}

# A reason that is not blank. (It is echoed as given: rego-cpp 1.5.2 outputs strings
# made by trim / trim_space without escaping them, a `"` in them breaks the JSON result.)
_force_reason if trim_space(input.reason) != ""

# -- days -----------------------------------------------------------------------------

# Whole days in ns ≥ 0, rounded down; exact (not floor(ns / _day): `/` is a double).
# A negative span (a call "in the future") counts as 0.
_floor_days(ns) := 0 if {
	ns < 0
} else := (ns - (ns % _day)) / _day

_ceil_days(ns) := _floor_days((ns + _day) - 1)

_days_text(n) := "1 day" if {
	n == 1
} else := concat("", [format_int(n, 10), " days"])

_ago(ns) := "less than a day ago" if {
	_floor_days(ns) == 0
} else := concat("", [_days_text(_floor_days(ns)), " ago"])
