import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ApiKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    API_KIND_UNSPECIFIED: _ClassVar[ApiKind]
    API_KIND_MODEL: _ClassVar[ApiKind]
    API_KIND_PROMPT: _ClassVar[ApiKind]
API_KIND_UNSPECIFIED: ApiKind
API_KIND_MODEL: ApiKind
API_KIND_PROMPT: ApiKind

class Api(_message.Message):
    __slots__ = ("id", "tenant_id", "name", "kind", "description", "model_aliases", "create_time", "owner_team_id", "visibility", "shared_tenant_ids", "update_time", "etag", "log_bodies")
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    MODEL_ALIASES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    OWNER_TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    SHARED_TENANT_IDS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    LOG_BODIES_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant_id: str
    name: str
    kind: ApiKind
    description: str
    model_aliases: _containers.RepeatedScalarFieldContainer[str]
    create_time: _timestamp_pb2.Timestamp
    owner_team_id: str
    visibility: str
    shared_tenant_ids: _containers.RepeatedScalarFieldContainer[str]
    update_time: _timestamp_pb2.Timestamp
    etag: str
    log_bodies: bool
    def __init__(self, id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[ApiKind, str]] = ..., description: _Optional[str] = ..., model_aliases: _Optional[_Iterable[str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., owner_team_id: _Optional[str] = ..., visibility: _Optional[str] = ..., shared_tenant_ids: _Optional[_Iterable[str]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ..., log_bodies: _Optional[bool] = ...) -> None: ...

class PromptSpec(_message.Message):
    __slots__ = ("system_template", "user_template", "input_schema", "output_schema", "model", "parameters")
    SYSTEM_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    USER_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    INPUT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    system_template: str
    user_template: str
    input_schema: _struct_pb2.Struct
    output_schema: _struct_pb2.Struct
    model: str
    parameters: _struct_pb2.Struct
    def __init__(self, system_template: _Optional[str] = ..., user_template: _Optional[str] = ..., input_schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., output_schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., model: _Optional[str] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ApiVersion(_message.Message):
    __slots__ = ("api_id", "version", "state", "description", "model_aliases", "prompt", "sunset_time", "successor", "create_time", "publish_time", "deprecate_time", "retire_time", "update_time", "etag")
    API_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    MODEL_ALIASES_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    SUNSET_TIME_FIELD_NUMBER: _ClassVar[int]
    SUCCESSOR_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_TIME_FIELD_NUMBER: _ClassVar[int]
    DEPRECATE_TIME_FIELD_NUMBER: _ClassVar[int]
    RETIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    api_id: str
    version: str
    state: str
    description: str
    model_aliases: _containers.RepeatedScalarFieldContainer[str]
    prompt: PromptSpec
    sunset_time: _timestamp_pb2.Timestamp
    successor: str
    create_time: _timestamp_pb2.Timestamp
    publish_time: _timestamp_pb2.Timestamp
    deprecate_time: _timestamp_pb2.Timestamp
    retire_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    etag: str
    def __init__(self, api_id: _Optional[str] = ..., version: _Optional[str] = ..., state: _Optional[str] = ..., description: _Optional[str] = ..., model_aliases: _Optional[_Iterable[str]] = ..., prompt: _Optional[_Union[PromptSpec, _Mapping]] = ..., sunset_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., successor: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., publish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deprecate_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., retire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...

class Subscription(_message.Message):
    __slots__ = ("id", "api_id", "api_name", "version", "subscriber_tenant_id", "team_id", "state", "justification", "decision_reason", "decided_by", "create_time", "update_time", "etag")
    ID_FIELD_NUMBER: _ClassVar[int]
    API_ID_FIELD_NUMBER: _ClassVar[int]
    API_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    JUSTIFICATION_FIELD_NUMBER: _ClassVar[int]
    DECISION_REASON_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    id: str
    api_id: str
    api_name: str
    version: str
    subscriber_tenant_id: str
    team_id: str
    state: str
    justification: str
    decision_reason: str
    decided_by: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    etag: str
    def __init__(self, id: _Optional[str] = ..., api_id: _Optional[str] = ..., api_name: _Optional[str] = ..., version: _Optional[str] = ..., subscriber_tenant_id: _Optional[str] = ..., team_id: _Optional[str] = ..., state: _Optional[str] = ..., justification: _Optional[str] = ..., decision_reason: _Optional[str] = ..., decided_by: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ("seq", "id", "tenant_id", "actor", "action", "object_type", "object_id", "before_digest", "after_digest", "decision_id", "create_time", "prev_hash", "hash")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    OBJECT_TYPE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    BEFORE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    AFTER_DIGEST_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    seq: int
    id: str
    tenant_id: str
    actor: str
    action: str
    object_type: str
    object_id: str
    before_digest: str
    after_digest: str
    decision_id: str
    create_time: _timestamp_pb2.Timestamp
    prev_hash: str
    hash: str
    def __init__(self, seq: _Optional[int] = ..., id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., actor: _Optional[str] = ..., action: _Optional[str] = ..., object_type: _Optional[str] = ..., object_id: _Optional[str] = ..., before_digest: _Optional[str] = ..., after_digest: _Optional[str] = ..., decision_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., prev_hash: _Optional[str] = ..., hash: _Optional[str] = ...) -> None: ...

class CreateApiRequest(_message.Message):
    __slots__ = ("name", "kind", "description", "model_aliases", "owner_team_id", "visibility", "shared_tenant_ids", "log_bodies")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    MODEL_ALIASES_FIELD_NUMBER: _ClassVar[int]
    OWNER_TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    SHARED_TENANT_IDS_FIELD_NUMBER: _ClassVar[int]
    LOG_BODIES_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: ApiKind
    description: str
    model_aliases: _containers.RepeatedScalarFieldContainer[str]
    owner_team_id: str
    visibility: str
    shared_tenant_ids: _containers.RepeatedScalarFieldContainer[str]
    log_bodies: bool
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[ApiKind, str]] = ..., description: _Optional[str] = ..., model_aliases: _Optional[_Iterable[str]] = ..., owner_team_id: _Optional[str] = ..., visibility: _Optional[str] = ..., shared_tenant_ids: _Optional[_Iterable[str]] = ..., log_bodies: _Optional[bool] = ...) -> None: ...

class CreateApiResponse(_message.Message):
    __slots__ = ("api",)
    API_FIELD_NUMBER: _ClassVar[int]
    api: Api
    def __init__(self, api: _Optional[_Union[Api, _Mapping]] = ...) -> None: ...

class GetApiRequest(_message.Message):
    __slots__ = ("api_id",)
    API_ID_FIELD_NUMBER: _ClassVar[int]
    api_id: str
    def __init__(self, api_id: _Optional[str] = ...) -> None: ...

class GetApiResponse(_message.Message):
    __slots__ = ("api",)
    API_FIELD_NUMBER: _ClassVar[int]
    api: Api
    def __init__(self, api: _Optional[_Union[Api, _Mapping]] = ...) -> None: ...

class ListApisRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "query", "kind")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    query: str
    kind: ApiKind
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., query: _Optional[str] = ..., kind: _Optional[_Union[ApiKind, str]] = ...) -> None: ...

class ListApisResponse(_message.Message):
    __slots__ = ("apis", "next_page_token")
    APIS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    apis: _containers.RepeatedCompositeFieldContainer[Api]
    next_page_token: str
    def __init__(self, apis: _Optional[_Iterable[_Union[Api, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateApiRequest(_message.Message):
    __slots__ = ("api_id", "patch", "update_mask", "etag")
    API_ID_FIELD_NUMBER: _ClassVar[int]
    PATCH_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    api_id: str
    patch: Api
    update_mask: _field_mask_pb2.FieldMask
    etag: str
    def __init__(self, api_id: _Optional[str] = ..., patch: _Optional[_Union[Api, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...

class UpdateApiResponse(_message.Message):
    __slots__ = ("api",)
    API_FIELD_NUMBER: _ClassVar[int]
    api: Api
    def __init__(self, api: _Optional[_Union[Api, _Mapping]] = ...) -> None: ...

class CreateVersionRequest(_message.Message):
    __slots__ = ("api_id", "version", "description", "model_aliases", "prompt")
    API_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    MODEL_ALIASES_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    api_id: str
    version: str
    description: str
    model_aliases: _containers.RepeatedScalarFieldContainer[str]
    prompt: PromptSpec
    def __init__(self, api_id: _Optional[str] = ..., version: _Optional[str] = ..., description: _Optional[str] = ..., model_aliases: _Optional[_Iterable[str]] = ..., prompt: _Optional[_Union[PromptSpec, _Mapping]] = ...) -> None: ...

class CreateVersionResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: ApiVersion
    def __init__(self, version: _Optional[_Union[ApiVersion, _Mapping]] = ...) -> None: ...

class GetVersionRequest(_message.Message):
    __slots__ = ("api_id", "version")
    API_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    api_id: str
    version: str
    def __init__(self, api_id: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class GetVersionResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: ApiVersion
    def __init__(self, version: _Optional[_Union[ApiVersion, _Mapping]] = ...) -> None: ...

class ListVersionsRequest(_message.Message):
    __slots__ = ("api_id", "page_size", "page_token")
    API_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    api_id: str
    page_size: int
    page_token: str
    def __init__(self, api_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListVersionsResponse(_message.Message):
    __slots__ = ("versions", "next_page_token")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[ApiVersion]
    next_page_token: str
    def __init__(self, versions: _Optional[_Iterable[_Union[ApiVersion, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateVersionRequest(_message.Message):
    __slots__ = ("api_id", "version", "patch", "update_mask", "etag")
    API_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PATCH_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    api_id: str
    version: str
    patch: ApiVersion
    update_mask: _field_mask_pb2.FieldMask
    etag: str
    def __init__(self, api_id: _Optional[str] = ..., version: _Optional[str] = ..., patch: _Optional[_Union[ApiVersion, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...

class UpdateVersionResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: ApiVersion
    def __init__(self, version: _Optional[_Union[ApiVersion, _Mapping]] = ...) -> None: ...

class PublishVersionRequest(_message.Message):
    __slots__ = ("api_id", "version")
    API_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    api_id: str
    version: str
    def __init__(self, api_id: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class PublishVersionResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: ApiVersion
    def __init__(self, version: _Optional[_Union[ApiVersion, _Mapping]] = ...) -> None: ...

class DeprecateVersionRequest(_message.Message):
    __slots__ = ("api_id", "version", "sunset_time", "successor")
    API_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SUNSET_TIME_FIELD_NUMBER: _ClassVar[int]
    SUCCESSOR_FIELD_NUMBER: _ClassVar[int]
    api_id: str
    version: str
    sunset_time: _timestamp_pb2.Timestamp
    successor: str
    def __init__(self, api_id: _Optional[str] = ..., version: _Optional[str] = ..., sunset_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., successor: _Optional[str] = ...) -> None: ...

class DeprecateVersionResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: ApiVersion
    def __init__(self, version: _Optional[_Union[ApiVersion, _Mapping]] = ...) -> None: ...

class RetireVersionRequest(_message.Message):
    __slots__ = ("api_id", "version", "force", "reason")
    API_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    api_id: str
    version: str
    force: bool
    reason: str
    def __init__(self, api_id: _Optional[str] = ..., version: _Optional[str] = ..., force: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class RetireVersionResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: ApiVersion
    def __init__(self, version: _Optional[_Union[ApiVersion, _Mapping]] = ...) -> None: ...

class CreateSubscriptionRequest(_message.Message):
    __slots__ = ("api_id", "version", "justification")
    API_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    JUSTIFICATION_FIELD_NUMBER: _ClassVar[int]
    api_id: str
    version: str
    justification: str
    def __init__(self, api_id: _Optional[str] = ..., version: _Optional[str] = ..., justification: _Optional[str] = ...) -> None: ...

class CreateSubscriptionResponse(_message.Message):
    __slots__ = ("subscription",)
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ...) -> None: ...

class GetSubscriptionRequest(_message.Message):
    __slots__ = ("subscription_id",)
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    subscription_id: str
    def __init__(self, subscription_id: _Optional[str] = ...) -> None: ...

class GetSubscriptionResponse(_message.Message):
    __slots__ = ("subscription",)
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ...) -> None: ...

class ListSubscriptionsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "pending_approval", "api_id", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PENDING_APPROVAL_FIELD_NUMBER: _ClassVar[int]
    API_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    pending_approval: bool
    api_id: str
    state: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., pending_approval: _Optional[bool] = ..., api_id: _Optional[str] = ..., state: _Optional[str] = ...) -> None: ...

class ListSubscriptionsResponse(_message.Message):
    __slots__ = ("subscriptions", "next_page_token")
    SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    subscriptions: _containers.RepeatedCompositeFieldContainer[Subscription]
    next_page_token: str
    def __init__(self, subscriptions: _Optional[_Iterable[_Union[Subscription, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ApproveSubscriptionRequest(_message.Message):
    __slots__ = ("subscription_id", "reason")
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    subscription_id: str
    reason: str
    def __init__(self, subscription_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ApproveSubscriptionResponse(_message.Message):
    __slots__ = ("subscription",)
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ...) -> None: ...

class RejectSubscriptionRequest(_message.Message):
    __slots__ = ("subscription_id", "reason")
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    subscription_id: str
    reason: str
    def __init__(self, subscription_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RejectSubscriptionResponse(_message.Message):
    __slots__ = ("subscription",)
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ...) -> None: ...

class RevokeSubscriptionRequest(_message.Message):
    __slots__ = ("subscription_id", "reason")
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    subscription_id: str
    reason: str
    def __init__(self, subscription_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RevokeSubscriptionResponse(_message.Message):
    __slots__ = ("subscription",)
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ...) -> None: ...

class ListAuditEventsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "object_id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    object_id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., object_id: _Optional[str] = ...) -> None: ...

class ListAuditEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[AuditEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[AuditEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class VerifyAuditChainRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VerifyAuditChainResponse(_message.Message):
    __slots__ = ("intact", "events", "first_bad_seq", "problem")
    INTACT_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    FIRST_BAD_SEQ_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    intact: bool
    events: int
    first_bad_seq: int
    problem: str
    def __init__(self, intact: _Optional[bool] = ..., events: _Optional[int] = ..., first_bad_seq: _Optional[int] = ..., problem: _Optional[str] = ...) -> None: ...

class AliasBinding(_message.Message):
    __slots__ = ("alias", "api_id", "api_name", "api_tenant_id", "owner_team_id", "version", "state", "sunset_time", "successor", "deprecate_time", "log_bodies")
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    API_ID_FIELD_NUMBER: _ClassVar[int]
    API_NAME_FIELD_NUMBER: _ClassVar[int]
    API_TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SUNSET_TIME_FIELD_NUMBER: _ClassVar[int]
    SUCCESSOR_FIELD_NUMBER: _ClassVar[int]
    DEPRECATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LOG_BODIES_FIELD_NUMBER: _ClassVar[int]
    alias: str
    api_id: str
    api_name: str
    api_tenant_id: str
    owner_team_id: str
    version: str
    state: str
    sunset_time: _timestamp_pb2.Timestamp
    successor: str
    deprecate_time: _timestamp_pb2.Timestamp
    log_bodies: bool
    def __init__(self, alias: _Optional[str] = ..., api_id: _Optional[str] = ..., api_name: _Optional[str] = ..., api_tenant_id: _Optional[str] = ..., owner_team_id: _Optional[str] = ..., version: _Optional[str] = ..., state: _Optional[str] = ..., sunset_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., successor: _Optional[str] = ..., deprecate_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., log_bodies: _Optional[bool] = ...) -> None: ...

class SubscriptionGrant(_message.Message):
    __slots__ = ("subscription_id", "team_id", "api_id", "version")
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    API_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    subscription_id: str
    team_id: str
    api_id: str
    version: str
    def __init__(self, subscription_id: _Optional[str] = ..., team_id: _Optional[str] = ..., api_id: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class PromptRoute(_message.Message):
    __slots__ = ("api_id", "api_name", "api_tenant_id", "version", "state", "prompt", "sunset_time", "successor", "deprecate_time", "owner_team_id", "log_bodies")
    API_ID_FIELD_NUMBER: _ClassVar[int]
    API_NAME_FIELD_NUMBER: _ClassVar[int]
    API_TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    SUNSET_TIME_FIELD_NUMBER: _ClassVar[int]
    SUCCESSOR_FIELD_NUMBER: _ClassVar[int]
    DEPRECATE_TIME_FIELD_NUMBER: _ClassVar[int]
    OWNER_TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    LOG_BODIES_FIELD_NUMBER: _ClassVar[int]
    api_id: str
    api_name: str
    api_tenant_id: str
    version: str
    state: str
    prompt: PromptSpec
    sunset_time: _timestamp_pb2.Timestamp
    successor: str
    deprecate_time: _timestamp_pb2.Timestamp
    owner_team_id: str
    log_bodies: bool
    def __init__(self, api_id: _Optional[str] = ..., api_name: _Optional[str] = ..., api_tenant_id: _Optional[str] = ..., version: _Optional[str] = ..., state: _Optional[str] = ..., prompt: _Optional[_Union[PromptSpec, _Mapping]] = ..., sunset_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., successor: _Optional[str] = ..., deprecate_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., owner_team_id: _Optional[str] = ..., log_bodies: _Optional[bool] = ...) -> None: ...

class GovernanceSnapshot(_message.Message):
    __slots__ = ("aliases", "grants", "prompts")
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    aliases: _containers.RepeatedCompositeFieldContainer[AliasBinding]
    grants: _containers.RepeatedCompositeFieldContainer[SubscriptionGrant]
    prompts: _containers.RepeatedCompositeFieldContainer[PromptRoute]
    def __init__(self, aliases: _Optional[_Iterable[_Union[AliasBinding, _Mapping]]] = ..., grants: _Optional[_Iterable[_Union[SubscriptionGrant, _Mapping]]] = ..., prompts: _Optional[_Iterable[_Union[PromptRoute, _Mapping]]] = ...) -> None: ...

class GovernanceDelta(_message.Message):
    __slots__ = ("upsert_aliases", "removed_aliases", "upsert_grants", "removed_grants", "upsert_prompts", "removed_prompts")
    UPSERT_ALIASES_FIELD_NUMBER: _ClassVar[int]
    REMOVED_ALIASES_FIELD_NUMBER: _ClassVar[int]
    UPSERT_GRANTS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_GRANTS_FIELD_NUMBER: _ClassVar[int]
    UPSERT_PROMPTS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_PROMPTS_FIELD_NUMBER: _ClassVar[int]
    upsert_aliases: _containers.RepeatedCompositeFieldContainer[AliasBinding]
    removed_aliases: _containers.RepeatedScalarFieldContainer[str]
    upsert_grants: _containers.RepeatedCompositeFieldContainer[SubscriptionGrant]
    removed_grants: _containers.RepeatedScalarFieldContainer[str]
    upsert_prompts: _containers.RepeatedCompositeFieldContainer[PromptRoute]
    removed_prompts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, upsert_aliases: _Optional[_Iterable[_Union[AliasBinding, _Mapping]]] = ..., removed_aliases: _Optional[_Iterable[str]] = ..., upsert_grants: _Optional[_Iterable[_Union[SubscriptionGrant, _Mapping]]] = ..., removed_grants: _Optional[_Iterable[str]] = ..., upsert_prompts: _Optional[_Iterable[_Union[PromptRoute, _Mapping]]] = ..., removed_prompts: _Optional[_Iterable[str]] = ...) -> None: ...

class WatchGovernanceRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchGovernanceResponse(_message.Message):
    __slots__ = ("revision", "snapshot", "delta")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    revision: int
    snapshot: GovernanceSnapshot
    delta: GovernanceDelta
    def __init__(self, revision: _Optional[int] = ..., snapshot: _Optional[_Union[GovernanceSnapshot, _Mapping]] = ..., delta: _Optional[_Union[GovernanceDelta, _Mapping]] = ...) -> None: ...
