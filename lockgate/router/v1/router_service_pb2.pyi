from google.api import annotations_pb2 as _annotations_pb2
from google.api import httpbody_pb2 as _httpbody_pb2
from lockgate.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OpenAIChatCompletionsRequest(_message.Message):
    __slots__ = ("http_body",)
    HTTP_BODY_FIELD_NUMBER: _ClassVar[int]
    http_body: _httpbody_pb2.HttpBody
    def __init__(self, http_body: _Optional[_Union[_httpbody_pb2.HttpBody, _Mapping]] = ...) -> None: ...

class AnthropicMessagesRequest(_message.Message):
    __slots__ = ("http_body",)
    HTTP_BODY_FIELD_NUMBER: _ClassVar[int]
    http_body: _httpbody_pb2.HttpBody
    def __init__(self, http_body: _Optional[_Union[_httpbody_pb2.HttpBody, _Mapping]] = ...) -> None: ...

class OpenAIEmbeddingsRequest(_message.Message):
    __slots__ = ("http_body",)
    HTTP_BODY_FIELD_NUMBER: _ClassVar[int]
    http_body: _httpbody_pb2.HttpBody
    def __init__(self, http_body: _Optional[_Union[_httpbody_pb2.HttpBody, _Mapping]] = ...) -> None: ...

class OpenAIListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ChatMessage(_message.Message):
    __slots__ = ("role", "content", "name")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    name: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ChatParameters(_message.Message):
    __slots__ = ("temperature", "top_p", "max_tokens", "stop", "seed", "user")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    top_p: float
    max_tokens: int
    stop: _containers.RepeatedScalarFieldContainer[str]
    seed: int
    user: str
    def __init__(self, temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., max_tokens: _Optional[int] = ..., stop: _Optional[_Iterable[str]] = ..., seed: _Optional[int] = ..., user: _Optional[str] = ...) -> None: ...

class CreateChatCompletionRequest(_message.Message):
    __slots__ = ("model", "messages", "parameters")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    model: str
    messages: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    parameters: ChatParameters
    def __init__(self, model: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ..., parameters: _Optional[_Union[ChatParameters, _Mapping]] = ...) -> None: ...

class ChatChoice(_message.Message):
    __slots__ = ("index", "message", "finish_reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    index: int
    message: ChatMessage
    finish_reason: str
    def __init__(self, index: _Optional[int] = ..., message: _Optional[_Union[ChatMessage, _Mapping]] = ..., finish_reason: _Optional[str] = ...) -> None: ...

class CreateChatCompletionResponse(_message.Message):
    __slots__ = ("id", "created", "model", "choices", "usage", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    created: int
    model: str
    choices: _containers.RepeatedCompositeFieldContainer[ChatChoice]
    usage: _common_pb2.TokenUsage
    request_id: str
    def __init__(self, id: _Optional[str] = ..., created: _Optional[int] = ..., model: _Optional[str] = ..., choices: _Optional[_Iterable[_Union[ChatChoice, _Mapping]]] = ..., usage: _Optional[_Union[_common_pb2.TokenUsage, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class StreamChatCompletionRequest(_message.Message):
    __slots__ = ("model", "messages", "parameters")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    model: str
    messages: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    parameters: ChatParameters
    def __init__(self, model: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ..., parameters: _Optional[_Union[ChatParameters, _Mapping]] = ...) -> None: ...

class ChatDelta(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class StreamChoice(_message.Message):
    __slots__ = ("index", "delta", "finish_reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    index: int
    delta: ChatDelta
    finish_reason: str
    def __init__(self, index: _Optional[int] = ..., delta: _Optional[_Union[ChatDelta, _Mapping]] = ..., finish_reason: _Optional[str] = ...) -> None: ...

class StreamChatCompletionResponse(_message.Message):
    __slots__ = ("id", "created", "model", "choices", "usage", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    created: int
    model: str
    choices: _containers.RepeatedCompositeFieldContainer[StreamChoice]
    usage: _common_pb2.TokenUsage
    request_id: str
    def __init__(self, id: _Optional[str] = ..., created: _Optional[int] = ..., model: _Optional[str] = ..., choices: _Optional[_Iterable[_Union[StreamChoice, _Mapping]]] = ..., usage: _Optional[_Union[_common_pb2.TokenUsage, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetRoutingTableRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeploymentStatus(_message.Message):
    __slots__ = ("name", "provider", "provider_type", "model", "region", "weight", "priority", "breaker_state", "error_rate", "consecutive_failures", "in_flight", "latency_ms", "ttft_ms", "calls", "failures", "last_error")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_TYPE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    BREAKER_STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    TTFT_MS_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    name: str
    provider: str
    provider_type: str
    model: str
    region: str
    weight: float
    priority: int
    breaker_state: str
    error_rate: float
    consecutive_failures: int
    in_flight: int
    latency_ms: float
    ttft_ms: float
    calls: int
    failures: int
    last_error: str
    def __init__(self, name: _Optional[str] = ..., provider: _Optional[str] = ..., provider_type: _Optional[str] = ..., model: _Optional[str] = ..., region: _Optional[str] = ..., weight: _Optional[float] = ..., priority: _Optional[int] = ..., breaker_state: _Optional[str] = ..., error_rate: _Optional[float] = ..., consecutive_failures: _Optional[int] = ..., in_flight: _Optional[int] = ..., latency_ms: _Optional[float] = ..., ttft_ms: _Optional[float] = ..., calls: _Optional[int] = ..., failures: _Optional[int] = ..., last_error: _Optional[str] = ...) -> None: ...

class AliasRoute(_message.Message):
    __slots__ = ("alias", "kind", "strategy", "deployments", "retry_attempts", "cache_ttl_seconds", "description")
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENTS_FIELD_NUMBER: _ClassVar[int]
    RETRY_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CACHE_TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    alias: str
    kind: str
    strategy: str
    deployments: _containers.RepeatedScalarFieldContainer[str]
    retry_attempts: int
    cache_ttl_seconds: int
    description: str
    def __init__(self, alias: _Optional[str] = ..., kind: _Optional[str] = ..., strategy: _Optional[str] = ..., deployments: _Optional[_Iterable[str]] = ..., retry_attempts: _Optional[int] = ..., cache_ttl_seconds: _Optional[int] = ..., description: _Optional[str] = ...) -> None: ...

class GetRoutingTableResponse(_message.Message):
    __slots__ = ("generation", "config_path", "last_reload_error", "aliases", "deployments")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    CONFIG_PATH_FIELD_NUMBER: _ClassVar[int]
    LAST_RELOAD_ERROR_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENTS_FIELD_NUMBER: _ClassVar[int]
    generation: int
    config_path: str
    last_reload_error: str
    aliases: _containers.RepeatedCompositeFieldContainer[AliasRoute]
    deployments: _containers.RepeatedCompositeFieldContainer[DeploymentStatus]
    def __init__(self, generation: _Optional[int] = ..., config_path: _Optional[str] = ..., last_reload_error: _Optional[str] = ..., aliases: _Optional[_Iterable[_Union[AliasRoute, _Mapping]]] = ..., deployments: _Optional[_Iterable[_Union[DeploymentStatus, _Mapping]]] = ...) -> None: ...

class ReloadGatewayConfigRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadGatewayConfigResponse(_message.Message):
    __slots__ = ("applied", "generation", "error")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    generation: int
    error: str
    def __init__(self, applied: _Optional[bool] = ..., generation: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...
