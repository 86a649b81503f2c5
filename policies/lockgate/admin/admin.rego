# Admin API: may this caller perform this admin action on this object?
#
# Asked by the auth service for every AuthService (admin API) call, through the
# embedded engine (lockgate/policy.py): entry point `lockgate/admin/decision`.
# The service also uses `scope` to filter the results of list calls.
#
# Input document (every field is always present, except `grant`; the policy
# still denies, with the default 404, when one is missing or has the wrong type):
#
#   {
#     "principal": {                       # the caller
#       "kind": "user",                    # or "service_account" (not used by the rules)
#       "id": "usr_…",                     # or "sa_…"
#       "key_id": "key_…",                 # "" when the caller used a JWT (not used)
#       "tenant_id": "ten_…",
#       "team_id": "team_…",               # the team the credential acts in; "" = none
#       "roles": ["tenant_admin", …],      # effective roles (already limited to the owner's)
#       "scopes": [],                      # APIs the credential may call; [] = every API
#       "models": []                       # model aliases; [] = every model
#     },
#     "action": "keys.create",             # tenants.{create,get,list,update},
#                                          # teams.{create,get,list,update,delete},
#                                          # users.{create,get,list,update,delete},
#                                          # service_accounts.{create,get,list,update,delete},
#                                          # keys.{create,get,list,update,rotate,revoke}, audit.list
#     "resource": {                        # the object acted on; for create and list: the
#                                          # container (a create names the new object's
#                                          # tenant, team and owner)
#       "type": "key",                     # tenant | team | user | service_account | key | audit
#       "tenant_id": "ten_…",              # "" only for tenants.list / tenants.create
#       "team_id": "team_…",               # the object's team (a team's own id for teams);
#                                          # "" = tenant-level
#       "owner_id": "usr_…",               # keys: the owner; users and service accounts: their
#                                          # own id; else ""
#       "roles": []                        # the object's CURRENT roles (users, service
#                                          # accounts, keys), else []
#     },
#     "grant": {                           # only when the call gives rights: create/update of
#       "roles": [], "scopes": [], "models": []   # keys, users, service accounts; rotate
#     }                                    # (the old key's rights)
#   }
#
# Data (data.json beside this file, mounted at data.lockgate.admin; keyed
# objects, so every check is a lookup, never a scan):
#
#   permissions: {role: {action: scope}}   what each role may do, and where; scope is
#                                          "all" | "tenant" | "team" | "self"
#   role_rank:   {role: n}                 viewer 1 … platform_admin 5; a role without a
#                                          rank is unknown
#   scope_rank:  {scope: n}                self 1, team 2, tenant 3, all 4
#   read_action: {type: action}            the action that reads an object of that type
#
# Scopes, for a resource: "all" always; "tenant" its tenant is the caller's;
# "team" same tenant and its team is the caller's (non-empty) team; "self" same
# tenant and its owner is the caller (non-empty id).
#
# Output: decision = {"allow": bool, "status": 200|403|404, "reason": str, "scope": str}.
# `scope` is the widest scope any of the caller's roles has for the action ("" when
# none); the action is checked against that scope only (roles' scopes are not merged,
# so a get agrees with what the list filtered by `scope` shows). The first matching
# denial wins:
#
#   404 not found   malformed input (no principal, no roles, a field missing or of
#                   the wrong type, a malformed grant)
#   403             the credential has API scopes, none of them "admin" (only asked
#                   when some role allows the action)
#   404 not found   the caller may not read the object (its type's read_action in the
#                   same scope rules; for lists the list rule itself), or it is in
#                   another tenant and scope is not "all": ids are never confirmed
#   403             the action is not within scope (the object is readable)
#   403             a write (not *.get / *.list) on an object holding a role above the
#                   caller's highest role (or a role without a rank)
#   403             `grant` gives a role that is unknown or above the caller's highest
#                   role, or wider API scopes or models than the caller's own ([] means
#                   every API / model, so a restricted caller may not grant [])
#   200 Allowed.    otherwise
#
# A list (`*.list`) is allowed when scope != "" and (scope == "all" or the container
# is in the caller's tenant); tenants.list also when the container tenant is "" (the
# service then shows non-platform callers only their tenant). The service filters
# list results by `scope`.
#
# Every 404 is exactly the default document (scope ""): nothing tells one reason
# from another. Reasons are shown to clients: never put another tenant's data in
# them. Build them with concat: rego-cpp 1.5.2's sprintf("%s") quotes strings made
# by other built-ins, which breaks the JSON result.
package lockgate.admin

# METADATA
# title: Admin decision
# description: >-
#   Authorizes one admin API (AuthService) call. Input: {principal: {kind, id,
#   key_id, tenant_id, team_id, roles, scopes, models}, action, resource: {type,
#   tenant_id, team_id, owner_id, roles}, grant?: {roles, scopes, models}}.
#   Output: {allow, status, reason, scope}; denied (404) unless a rule allows.
# entrypoint: true
default decision := {"allow": false, "status": 404, "reason": "not found", "scope": ""}

decision := _not_found if {
	not _well_formed
} else := _deny("This API key is not scoped for the admin API.") if {
	_scope != ""
	count(input.principal.scopes) > 0
	not _principal_scopes.admin
} else := _not_found if {
	not _readable
} else := _not_found if {
	_other_tenant
	_scope != "all"
} else := _deny(concat("", ["Your roles do not allow ", input.action, " ", _where, "."])) if {
	not _action_allowed
} else := _deny(concat("", ["Cannot ", input.action, " ", _this, ": it holds a role above your own roles."])) if {
	not _is_read
	_target_outranks
} else := _deny(concat("", ["Cannot grant role ", _unknown_grant_roles[0], ": it is not a known role."])) if {
	_grant_present
	count(_unknown_grant_roles) > 0
} else := _deny(concat("", ["Cannot grant role ", _higher_grant_roles[0], ": it is above your own roles."])) if {
	_grant_present
	count(_higher_grant_roles) > 0
} else := _deny("Cannot grant API scopes beyond your own: your API key is limited to some APIs, and an empty list means every API.") if {
	_grant_present
	_grant_widens(input.principal.scopes, input.grant.scopes)
} else := _deny("Cannot grant models beyond your own: your API key is limited to some models, and an empty list means every model.") if {
	_grant_present
	_grant_widens(input.principal.models, input.grant.models)
} else := {"allow": true, "status": 200, "reason": "Allowed.", "scope": _scope} if {
	_scope != ""
}

_not_found := {"allow": false, "status": 404, "reason": "not found", "scope": ""}

_deny(reason) := {"allow": false, "status": 403, "reason": reason, "scope": _scope}

# -- input shape ----------------------------------------------------------------------

_well_formed if {
	is_object(input.principal)
	is_string(input.principal.id)
	is_string(input.principal.tenant_id)
	is_string(input.principal.team_id)
	is_array(input.principal.roles)
	count(input.principal.roles) > 0
	is_array(input.principal.scopes)
	is_array(input.principal.models)
	is_string(input.action)
	is_object(input.resource)
	is_string(input.resource.type)
	is_string(input.resource.tenant_id)
	is_string(input.resource.team_id)
	is_string(input.resource.owner_id)
	is_array(input.resource.roles)
	_grant_well_formed
}

# `grant` present with any value (even null or false): it must then be well formed.
_grant_present if {
	_ := input.grant
}

_grant_well_formed if not _grant_present

_grant_well_formed if {
	is_object(input.grant)
	is_array(input.grant.roles)
	is_array(input.grant.scopes)
	is_array(input.grant.models)
	every role in input.grant.roles {
		is_string(role) # named in reasons
	}
}

# -- scopes ---------------------------------------------------------------------------

# The widest scope the caller's roles give for the action; "" when none.
# (rego-cpp 1.5.2: a function parameter used as a key inside a comprehension,
# `{s | … permissions[role][action]}`, is taken as a free variable, so these
# comprehensions are rules over input, not a function of the action.)
_scope := _widest({s |
	some role in input.principal.roles
	s := data.lockgate.admin.permissions[role][input.action]
})

# The widest scope the caller's roles give for reading the resource.
_read_scope := _widest({s |
	some role in input.principal.roles
	s := data.lockgate.admin.permissions[role][_read_action]
})

_read_action := data.lockgate.admin.read_action[input.resource.type]

_widest(scopes) := s if {
	some s in scopes
	data.lockgate.admin.scope_rank[s]
	every t in scopes {
		data.lockgate.admin.scope_rank[t] <= data.lockgate.admin.scope_rank[s]
	}
} else := ""

# The resource is within `scope` for the caller.
_within(scope) if scope == "all"

_within(scope) if {
	scope == "tenant"
	_same_tenant
}

_within(scope) if {
	scope == "team"
	_same_tenant
	input.principal.team_id != ""
	input.resource.team_id == input.principal.team_id
}

_within(scope) if {
	scope == "self"
	_same_tenant
	input.principal.id != ""
	input.resource.owner_id == input.principal.id
}

_same_tenant if {
	input.principal.tenant_id != ""
	input.resource.tenant_id == input.principal.tenant_id
}

# In a tenant, not the caller's ("" is no tenant: tenants.list and tenants.create).
_other_tenant if {
	input.resource.tenant_id != ""
	input.resource.tenant_id != input.principal.tenant_id
}

# -- actions --------------------------------------------------------------------------

_is_list if endswith(input.action, ".list")

_is_read if _is_list

_is_read if endswith(input.action, ".get")

_is_create if endswith(input.action, ".create")

# A list: the container is in scope. tenants.list: also "" (the service filters).
_list_allowed if _scope == "all"

_list_allowed if {
	_scope != ""
	_same_tenant
}

_list_allowed if {
	input.action == "tenants.list"
	_scope != ""
	input.resource.tenant_id == ""
	input.principal.tenant_id != ""
}

# The caller may read the object (for lists: the list rule itself).
_readable if {
	_is_list
	_list_allowed
}

_readable if {
	not _is_list
	_read_scope != ""
	_within(_read_scope)
}

_action_allowed if {
	_is_list
	_list_allowed
}

_action_allowed if {
	not _is_list
	_within(_scope)
}

# -- ranks ----------------------------------------------------------------------------

# The caller's highest role rank (0 when no role has a rank).
_principal_rank := max(array.concat([0], [rank |
	some role in input.principal.roles
	rank := data.lockgate.admin.role_rank[role]
]))

# The object holds a role above the caller's, or one without a rank (safer: deny).
_target_outranks if {
	some role in input.resource.roles
	not data.lockgate.admin.role_rank[role]
}

_target_outranks if {
	some role in input.resource.roles
	data.lockgate.admin.role_rank[role] > _principal_rank
}

# Grant roles, in the order given.
_unknown_grant_roles := [role |
	some role in input.grant.roles
	not data.lockgate.admin.role_rank[role]
]

_higher_grant_roles := [role |
	some role in input.grant.roles
	data.lockgate.admin.role_rank[role] > _principal_rank
]

_principal_scopes := {s: true | some s in input.principal.scopes}

# A restriction list of the caller (`own`, [] = everything) does not cover `granted`.
_grant_widens(own, granted) if {
	count(own) > 0
	count(granted) == 0
}

_grant_widens(own, granted) if {
	count(own) > 0
	allowed := {x: true | some x in own}
	some x in granted
	not allowed[x]
}

# -- reasons --------------------------------------------------------------------------

_noun := {
	"tenant": "this tenant",
	"team": "this team",
	"user": "this user",
	"service_account": "this service account",
	"key": "this API key",
	"audit": "this audit trail",
}

_this := object.get(_noun, input.resource.type, "this object")

_where := "here" if {
	_is_create
} else := "here" if {
	_is_list
} else := concat("", ["on ", _this])
