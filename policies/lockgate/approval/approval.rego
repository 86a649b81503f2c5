# API subscriptions: what happens to a subscription request, and who may decide one.
#
# Asked by the registry service through the embedded engine (lockgate/policy.py):
#
#   lockgate/approval/decision     a team asks to subscribe to an API
#   lockgate/approval/may_decide   may this principal approve / reject / revoke a subscription?
#
# Every input field below that a rule reads is required; a missing or mistyped
# one is the default document (fields not read, such as principal.id or api.name,
# are ignored).
#
# decision input:
#
#   {
#     "principal": {                       # who asks
#       "id": "usr_…", "kind": "user",     # (not read)
#       "tenant_id": "ten_…",
#       "team_id": "team_…",               # the team the credential acts in; "" = none
#       "roles": ["developer"]             # effective roles; at least one
#     },
#     "api": {
#       "id": "api_…", "name": "…",        # (not read)
#       "kind": "model",                   # "model" | "prompt" (another kind is never auto-approved)
#       "tenant_id": "ten_…",
#       "owner_team_id": "team_…",
#       "visibility": "tenant",            # private | team | tenant | shared | public
#       "shared_tenants": {"ten_…": true}  # an object, {} when not shared
#     },
#     "subscriber": {"tenant_id": "ten_…", "team_id": "team_…"},   # the subscribing team
#     "request": {"version": "v1", "justification": "…"}           # version "" = any
#   }
#
# Data (data.json beside this file, mounted at data.lockgate.approval):
#
#   auto_approve_same_team: bool                  the owner team's own subscriptions are approved
#   auto_approve_same_tenant_kinds: {kind: bool}  other teams of the owner tenant: approved for
#                                                 these API kinds, else pending
#   justification_required_cross_tenant: bool     subscriptions from other tenants need a
#                                                 justification (anything but false: required)
#   min_justification_chars: n                    its minimum length (after trimming blanks)
#   role_rank: {role: n}                          viewer 1 … platform_admin 5 (as in lockgate/admin)
#
# decision output: {"outcome": "approved"|"pending"|"rejected", "reason": str,
# "justification_required": bool}. The first match wins:
#
#   rejected        malformed input (or data): the default, "Denied by approval policy."
#   rejected        the principal is not a member of the subscribing team (same tenant and
#                   team) with a role of rank ≥ developer: "your roles do not allow subscribing"
#   rejected        the API is not visible to the subscribing team: "API not found" (exactly
#                   what an unknown API answers). Visible: public to anyone; shared to its own
#                   tenant and shared_tenants; tenant to its own tenant; team and private
#                   to its owner team only; any other visibility to no one
#   approved        the subscriber is the owner team ("same team"), if auto_approve_same_team;
#                   else pending
#   approved        the subscriber is another team of the owner tenant and
#                   auto_approve_same_tenant_kinds[api.kind] is true; else pending
#   rejected        another tenant, a justification is required and the trimmed justification
#                   is shorter than min_justification_chars (justification_required: true)
#   pending         another tenant (justification_required: whether one was required)
#
# may_decide input: {"principal": {tenant_id, team_id, roles}, "api": {tenant_id,
# owner_team_id}, "action": "approve"|"reject"|"revoke", "subscriber"?: {"team_id",
# "tenant_id"?}}. Output: {"allow": bool, "reason": str}. Allowed: a platform_admin; a
# tenant_admin (or above) of the API's tenant; a team_admin (or above) of the API's tenant
# acting in its owner team; for "revoke" also a developer (or above) acting in the
# subscribing team (and, when subscriber.tenant_id is given, in its tenant).
#
# Reasons are shown to clients: build them with concat (rego-cpp 1.5.2's
# sprintf("%s") quotes strings made by other built-ins, and its sprintf("%d")
# truncates large integers: numbers go through format_int).
package lockgate.approval

# METADATA
# title: Subscription decision
# description: >-
#   What happens to a subscription request. Input: {principal: {tenant_id, team_id,
#   roles}, api: {kind, tenant_id, owner_team_id, visibility, shared_tenants},
#   subscriber: {tenant_id, team_id}, request: {version, justification}}.
#   Output: {outcome, reason, justification_required}; rejected unless a rule decides.
# entrypoint: true
default decision := {"outcome": "rejected", "reason": "Denied by approval policy.", "justification_required": false}

decision := _rejected if {
	not _well_formed
} else := _outcome("rejected", "your roles do not allow subscribing", false) if {
	not _may_subscribe
} else := _outcome("rejected", "API not found", false) if {
	not _visible
} else := _outcome("approved", "same team", false) if {
	_same_team
	data.lockgate.approval.auto_approve_same_team == true
} else := _outcome("pending", "same team: the API's owners approve subscriptions", false) if {
	_same_team
} else := _outcome("approved", "same tenant", false) if {
	_same_tenant
	data.lockgate.approval.auto_approve_same_tenant_kinds[input.api.kind] == true
} else := _outcome("pending", "same tenant: the API's owners approve subscriptions", false) if {
	_same_tenant
} else := _outcome("rejected", concat("", ["a subscription from another tenant needs a justification of at least ", format_int(_min_chars, 10), " characters"]), true) if {
	_other_tenant
	_justification_required
	not _justified
} else := _outcome("pending", "another tenant: the API's owners approve subscriptions", true) if {
	_other_tenant
	_justification_required
	_justified
} else := _outcome("pending", "another tenant: the API's owners approve subscriptions", false) if {
	_other_tenant
	data.lockgate.approval.justification_required_cross_tenant == false
}

_rejected := {"outcome": "rejected", "reason": "Denied by approval policy.", "justification_required": false}

_outcome(outcome, reason, required) := {"outcome": outcome, "reason": reason, "justification_required": required}

# -- input shape ----------------------------------------------------------------------

_well_formed if {
	_data_ok
	_principal_ok
	is_object(input.api)
	is_string(input.api.kind)
	is_string(input.api.tenant_id)
	input.api.tenant_id != ""
	is_string(input.api.owner_team_id)
	is_string(input.api.visibility)
	is_object(input.api.shared_tenants)
	is_object(input.subscriber)
	is_string(input.subscriber.tenant_id)
	input.subscriber.tenant_id != ""
	is_string(input.subscriber.team_id)
	input.subscriber.team_id != ""
	is_object(input.request)
	is_string(input.request.version)
	is_string(input.request.justification)
}

_principal_ok if {
	is_object(input.principal)
	is_string(input.principal.tenant_id)
	is_string(input.principal.team_id)
	is_array(input.principal.roles)
	count(input.principal.roles) > 0
}

_data_ok if {
	is_boolean(data.lockgate.approval.auto_approve_same_team)
	is_object(data.lockgate.approval.auto_approve_same_tenant_kinds)
	is_boolean(data.lockgate.approval.justification_required_cross_tenant)
	is_number(_min_chars)
	floor(_min_chars) == _min_chars
	_min_chars >= 0
	is_number(_rank_of("developer"))
	is_number(_rank_of("team_admin"))
	is_number(_rank_of("tenant_admin"))
	is_number(_rank_of("platform_admin"))
}

# -- ranks ----------------------------------------------------------------------------

_rank_of(role) := data.lockgate.approval.role_rank[role]

# The principal's highest role rank (0 when no role has a rank).
_rank := max(array.concat([0], [rank |
	some role in input.principal.roles
	rank := data.lockgate.approval.role_rank[role]
]))

# -- decision -------------------------------------------------------------------------

# The principal acts in the subscribing team, as developer or above.
_may_subscribe if {
	input.principal.tenant_id == input.subscriber.tenant_id
	input.principal.team_id == input.subscriber.team_id
	_rank >= _rank_of("developer")
}

_same_tenant if input.subscriber.tenant_id == input.api.tenant_id

_same_team if {
	_same_tenant
	input.subscriber.team_id == input.api.owner_team_id
}

_other_tenant if input.subscriber.tenant_id != input.api.tenant_id

_visible if input.api.visibility == "public"

_visible if {
	input.api.visibility == "shared"
	_same_tenant
}

_visible if {
	input.api.visibility == "shared"
	input.api.shared_tenants[input.subscriber.tenant_id] == true
}

_visible if {
	_tenant_wide[input.api.visibility]
	_same_tenant
}

_visible if {
	_owner_team_only[input.api.visibility]
	_same_team
}

# Visible to the whole owner tenant.
_tenant_wide := {"tenant": true}

# Visible to the owner team alone (private: its admins in the catalog; both alike here).
_owner_team_only := {"private": true, "team": true}

# Anything but an explicit false requires one.
_justification_required if not data.lockgate.approval.justification_required_cross_tenant == false

_min_chars := data.lockgate.approval.min_justification_chars

_justified if count(trim_space(input.request.justification)) >= _min_chars

# -- may_decide -----------------------------------------------------------------------

# METADATA
# title: May decide on a subscription
# description: >-
#   May this principal approve, reject or revoke a subscription to this API?
#   Input: {principal: {tenant_id, team_id, roles}, api: {tenant_id, owner_team_id},
#   action, subscriber?: {team_id, tenant_id?}}. Output: {allow, reason}; denied
#   unless a rule allows.
# entrypoint: true
default may_decide := {"allow": false, "reason": "Denied by approval policy."}

may_decide := _md_denied if {
	not _md_well_formed
} else := _md(false, concat("", ["unknown action: ", input.action])) if {
	not _actions[input.action]
} else := _md(true, "Allowed: platform_admin.") if {
	_rank >= _rank_of("platform_admin")
} else := _md(true, "Allowed: tenant_admin of the API's tenant.") if {
	_in_api_tenant
	_rank >= _rank_of("tenant_admin")
} else := _md(true, "Allowed: team_admin of the API's owner team.") if {
	_in_api_tenant
	input.principal.team_id != ""
	input.principal.team_id == input.api.owner_team_id
	_rank >= _rank_of("team_admin")
} else := _md(true, "Allowed: the subscribing team may revoke its own subscription.") if {
	input.action == "revoke"
	_in_subscriber_team
	_rank >= _rank_of("developer")
} else := _md(false, "only the API's owner team (team_admin or above), a tenant_admin of its tenant, a platform_admin or the subscribing team (developer or above) may revoke this subscription") if {
	input.action == "revoke"
} else := _md(false, concat("", ["only the API's owner team (team_admin or above), a tenant_admin of its tenant or a platform_admin may ", input.action, " subscriptions"]))

_md_denied := {"allow": false, "reason": "Denied by approval policy."}

_md(allow, reason) := {"allow": allow, "reason": reason}

_actions := {"approve": true, "reject": true, "revoke": true}

_md_well_formed if {
	_data_ok
	_principal_ok
	is_object(input.api)
	is_string(input.api.tenant_id)
	is_string(input.api.owner_team_id)
	is_string(input.action)
	_subscriber_ok
}

# `subscriber` is optional; when present (with any value) it must be well formed.
_subscriber_present if {
	_ := input.subscriber
}

_subscriber_ok if not _subscriber_present

_subscriber_ok if {
	is_object(input.subscriber)
	is_string(input.subscriber.team_id)
	not _subscriber_tenant_mistyped
}

_subscriber_tenant_mistyped if {
	_ := input.subscriber.tenant_id
	not is_string(input.subscriber.tenant_id)
}

_in_api_tenant if {
	input.principal.tenant_id != ""
	input.principal.tenant_id == input.api.tenant_id
}

_in_subscriber_team if {
	input.principal.team_id != ""
	input.principal.team_id == input.subscriber.team_id
	object.get(input.subscriber, "tenant_id", input.principal.tenant_id) == input.principal.tenant_id
}
