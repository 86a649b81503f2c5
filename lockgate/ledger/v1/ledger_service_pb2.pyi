import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from lockgate.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UsageEntry(_message.Message):
    __slots__ = ("request_id", "tenant_id", "key_id", "alias", "deployment", "provider", "provider_model", "usage", "latency_ms", "ttft_ms", "status", "error_type", "streamed", "create_time", "cache_hit", "operation", "attempts", "cost_micro_usd", "price_source", "team_id", "principal", "api_id", "api_version", "subscription_id", "request_body", "response_body", "admission_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_MODEL_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    TTFT_MS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    STREAMED_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    COST_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    PRICE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    API_ID_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_BODY_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_BODY_FIELD_NUMBER: _ClassVar[int]
    ADMISSION_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    tenant_id: str
    key_id: str
    alias: str
    deployment: str
    provider: str
    provider_model: str
    usage: _common_pb2.TokenUsage
    latency_ms: int
    ttft_ms: int
    status: str
    error_type: str
    streamed: bool
    create_time: _timestamp_pb2.Timestamp
    cache_hit: bool
    operation: str
    attempts: int
    cost_micro_usd: int
    price_source: str
    team_id: str
    principal: str
    api_id: str
    api_version: str
    subscription_id: str
    request_body: str
    response_body: str
    admission_id: str
    def __init__(self, request_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., key_id: _Optional[str] = ..., alias: _Optional[str] = ..., deployment: _Optional[str] = ..., provider: _Optional[str] = ..., provider_model: _Optional[str] = ..., usage: _Optional[_Union[_common_pb2.TokenUsage, _Mapping]] = ..., latency_ms: _Optional[int] = ..., ttft_ms: _Optional[int] = ..., status: _Optional[str] = ..., error_type: _Optional[str] = ..., streamed: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cache_hit: _Optional[bool] = ..., operation: _Optional[str] = ..., attempts: _Optional[int] = ..., cost_micro_usd: _Optional[int] = ..., price_source: _Optional[str] = ..., team_id: _Optional[str] = ..., principal: _Optional[str] = ..., api_id: _Optional[str] = ..., api_version: _Optional[str] = ..., subscription_id: _Optional[str] = ..., request_body: _Optional[str] = ..., response_body: _Optional[str] = ..., admission_id: _Optional[str] = ...) -> None: ...

class RecordUsageRequest(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[UsageEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[UsageEntry, _Mapping]]] = ...) -> None: ...

class RecordUsageResponse(_message.Message):
    __slots__ = ("inserted", "duplicates")
    INSERTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    inserted: int
    duplicates: int
    def __init__(self, inserted: _Optional[int] = ..., duplicates: _Optional[int] = ...) -> None: ...

class ListUsageRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListUsageResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[UsageEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[UsageEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class QueryUsageRequest(_message.Message):
    __slots__ = ("bucket", "group_by", "start_time", "end_time", "order_by", "limit")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    bucket: str
    group_by: _containers.RepeatedScalarFieldContainer[str]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    order_by: str
    limit: int
    def __init__(self, bucket: _Optional[str] = ..., group_by: _Optional[_Iterable[str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., order_by: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class UsageRow(_message.Message):
    __slots__ = ("bucket_start", "group", "requests", "errors", "error_rate", "input_tokens", "output_tokens", "total_tokens", "cached_input_tokens", "estimated_requests", "cache_hits", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "ttft_p50_ms", "cost_micro_usd", "unpriced_requests")
    class GroupEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BUCKET_START_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HITS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P99_MS_FIELD_NUMBER: _ClassVar[int]
    TTFT_P50_MS_FIELD_NUMBER: _ClassVar[int]
    COST_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    UNPRICED_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    bucket_start: _timestamp_pb2.Timestamp
    group: _containers.ScalarMap[str, str]
    requests: int
    errors: int
    error_rate: float
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cached_input_tokens: int
    estimated_requests: int
    cache_hits: int
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    ttft_p50_ms: float
    cost_micro_usd: int
    unpriced_requests: int
    def __init__(self, bucket_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., group: _Optional[_Mapping[str, str]] = ..., requests: _Optional[int] = ..., errors: _Optional[int] = ..., error_rate: _Optional[float] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ..., cached_input_tokens: _Optional[int] = ..., estimated_requests: _Optional[int] = ..., cache_hits: _Optional[int] = ..., latency_p50_ms: _Optional[float] = ..., latency_p95_ms: _Optional[float] = ..., latency_p99_ms: _Optional[float] = ..., ttft_p50_ms: _Optional[float] = ..., cost_micro_usd: _Optional[int] = ..., unpriced_requests: _Optional[int] = ...) -> None: ...

class QueryUsageResponse(_message.Message):
    __slots__ = ("rows", "start_time", "end_time")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[UsageRow]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, rows: _Optional[_Iterable[_Union[UsageRow, _Mapping]]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetLastCallRequest(_message.Message):
    __slots__ = ("api_id", "api_version")
    API_ID_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    api_id: str
    api_version: str
    def __init__(self, api_id: _Optional[str] = ..., api_version: _Optional[str] = ...) -> None: ...

class GetLastCallResponse(_message.Message):
    __slots__ = ("last_call_time",)
    LAST_CALL_TIME_FIELD_NUMBER: _ClassVar[int]
    last_call_time: _timestamp_pb2.Timestamp
    def __init__(self, last_call_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PriceVersion(_message.Message):
    __slots__ = ("price_id", "provider", "model", "effective_date", "input_usd_per_mtok", "output_usd_per_mtok", "cached_input_usd_per_mtok", "source", "create_time", "created_by")
    PRICE_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_DATE_FIELD_NUMBER: _ClassVar[int]
    INPUT_USD_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_USD_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    CACHED_INPUT_USD_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    price_id: str
    provider: str
    model: str
    effective_date: str
    input_usd_per_mtok: str
    output_usd_per_mtok: str
    cached_input_usd_per_mtok: str
    source: str
    create_time: _timestamp_pb2.Timestamp
    created_by: str
    def __init__(self, price_id: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., effective_date: _Optional[str] = ..., input_usd_per_mtok: _Optional[str] = ..., output_usd_per_mtok: _Optional[str] = ..., cached_input_usd_per_mtok: _Optional[str] = ..., source: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[str] = ...) -> None: ...

class ListPricesRequest(_message.Message):
    __slots__ = ("provider", "model")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class ListPricesResponse(_message.Message):
    __slots__ = ("prices",)
    PRICES_FIELD_NUMBER: _ClassVar[int]
    prices: _containers.RepeatedCompositeFieldContainer[PriceVersion]
    def __init__(self, prices: _Optional[_Iterable[_Union[PriceVersion, _Mapping]]] = ...) -> None: ...

class SetPriceRequest(_message.Message):
    __slots__ = ("provider", "model", "effective_date", "input_usd_per_mtok", "output_usd_per_mtok", "cached_input_usd_per_mtok")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_DATE_FIELD_NUMBER: _ClassVar[int]
    INPUT_USD_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_USD_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    CACHED_INPUT_USD_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    effective_date: str
    input_usd_per_mtok: str
    output_usd_per_mtok: str
    cached_input_usd_per_mtok: str
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ..., effective_date: _Optional[str] = ..., input_usd_per_mtok: _Optional[str] = ..., output_usd_per_mtok: _Optional[str] = ..., cached_input_usd_per_mtok: _Optional[str] = ...) -> None: ...

class SetPriceResponse(_message.Message):
    __slots__ = ("price",)
    PRICE_FIELD_NUMBER: _ClassVar[int]
    price: PriceVersion
    def __init__(self, price: _Optional[_Union[PriceVersion, _Mapping]] = ...) -> None: ...

class DeletePriceRequest(_message.Message):
    __slots__ = ("price_id",)
    PRICE_ID_FIELD_NUMBER: _ClassVar[int]
    price_id: str
    def __init__(self, price_id: _Optional[str] = ...) -> None: ...

class DeletePriceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Budget(_message.Message):
    __slots__ = ("budget_id", "scope", "scope_id", "amount_micro_usd", "period", "timezone", "hard", "period_start", "period_end", "spent_micro_usd", "reserved_micro_usd", "create_time", "update_time")
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    HARD_FIELD_NUMBER: _ClassVar[int]
    PERIOD_START_FIELD_NUMBER: _ClassVar[int]
    PERIOD_END_FIELD_NUMBER: _ClassVar[int]
    SPENT_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    RESERVED_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    budget_id: str
    scope: str
    scope_id: str
    amount_micro_usd: int
    period: str
    timezone: str
    hard: bool
    period_start: _timestamp_pb2.Timestamp
    period_end: _timestamp_pb2.Timestamp
    spent_micro_usd: int
    reserved_micro_usd: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, budget_id: _Optional[str] = ..., scope: _Optional[str] = ..., scope_id: _Optional[str] = ..., amount_micro_usd: _Optional[int] = ..., period: _Optional[str] = ..., timezone: _Optional[str] = ..., hard: _Optional[bool] = ..., period_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., period_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., spent_micro_usd: _Optional[int] = ..., reserved_micro_usd: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SetBudgetRequest(_message.Message):
    __slots__ = ("scope", "scope_id", "amount_micro_usd", "period", "timezone", "hard")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    HARD_FIELD_NUMBER: _ClassVar[int]
    scope: str
    scope_id: str
    amount_micro_usd: int
    period: str
    timezone: str
    hard: bool
    def __init__(self, scope: _Optional[str] = ..., scope_id: _Optional[str] = ..., amount_micro_usd: _Optional[int] = ..., period: _Optional[str] = ..., timezone: _Optional[str] = ..., hard: _Optional[bool] = ...) -> None: ...

class SetBudgetResponse(_message.Message):
    __slots__ = ("budget",)
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    budget: Budget
    def __init__(self, budget: _Optional[_Union[Budget, _Mapping]] = ...) -> None: ...

class ListBudgetsRequest(_message.Message):
    __slots__ = ("scope", "scope_id")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_ID_FIELD_NUMBER: _ClassVar[int]
    scope: str
    scope_id: str
    def __init__(self, scope: _Optional[str] = ..., scope_id: _Optional[str] = ...) -> None: ...

class ListBudgetsResponse(_message.Message):
    __slots__ = ("budgets",)
    BUDGETS_FIELD_NUMBER: _ClassVar[int]
    budgets: _containers.RepeatedCompositeFieldContainer[Budget]
    def __init__(self, budgets: _Optional[_Iterable[_Union[Budget, _Mapping]]] = ...) -> None: ...

class DeleteBudgetRequest(_message.Message):
    __slots__ = ("budget_id",)
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    budget_id: str
    def __init__(self, budget_id: _Optional[str] = ...) -> None: ...

class DeleteBudgetResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RateLimit(_message.Message):
    __slots__ = ("rate_limit_id", "scope", "scope_id", "requests_per_minute", "tokens_per_minute", "create_time", "update_time")
    RATE_LIMIT_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    rate_limit_id: str
    scope: str
    scope_id: str
    requests_per_minute: int
    tokens_per_minute: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, rate_limit_id: _Optional[str] = ..., scope: _Optional[str] = ..., scope_id: _Optional[str] = ..., requests_per_minute: _Optional[int] = ..., tokens_per_minute: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SetRateLimitRequest(_message.Message):
    __slots__ = ("scope", "scope_id", "requests_per_minute", "tokens_per_minute")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    scope: str
    scope_id: str
    requests_per_minute: int
    tokens_per_minute: int
    def __init__(self, scope: _Optional[str] = ..., scope_id: _Optional[str] = ..., requests_per_minute: _Optional[int] = ..., tokens_per_minute: _Optional[int] = ...) -> None: ...

class SetRateLimitResponse(_message.Message):
    __slots__ = ("rate_limit",)
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    rate_limit: RateLimit
    def __init__(self, rate_limit: _Optional[_Union[RateLimit, _Mapping]] = ...) -> None: ...

class ListRateLimitsRequest(_message.Message):
    __slots__ = ("scope", "scope_id")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_ID_FIELD_NUMBER: _ClassVar[int]
    scope: str
    scope_id: str
    def __init__(self, scope: _Optional[str] = ..., scope_id: _Optional[str] = ...) -> None: ...

class ListRateLimitsResponse(_message.Message):
    __slots__ = ("rate_limits",)
    RATE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    rate_limits: _containers.RepeatedCompositeFieldContainer[RateLimit]
    def __init__(self, rate_limits: _Optional[_Iterable[_Union[RateLimit, _Mapping]]] = ...) -> None: ...

class DeleteRateLimitRequest(_message.Message):
    __slots__ = ("rate_limit_id",)
    RATE_LIMIT_ID_FIELD_NUMBER: _ClassVar[int]
    rate_limit_id: str
    def __init__(self, rate_limit_id: _Optional[str] = ...) -> None: ...

class DeleteRateLimitResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AdmitRequest(_message.Message):
    __slots__ = ("request_id", "tenant_id", "team_id", "key_id", "subscription_id", "alias", "max_cost_micro_usd", "estimated_tokens", "reservation_ttl_seconds", "count_requests", "cache_hit", "tickets", "ticket_max_cost_micro_usd", "ticket_tokens")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    MAX_COST_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    COUNT_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    TICKETS_FIELD_NUMBER: _ClassVar[int]
    TICKET_MAX_COST_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    TICKET_TOKENS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    tenant_id: str
    team_id: str
    key_id: str
    subscription_id: str
    alias: str
    max_cost_micro_usd: int
    estimated_tokens: int
    reservation_ttl_seconds: int
    count_requests: int
    cache_hit: bool
    tickets: int
    ticket_max_cost_micro_usd: int
    ticket_tokens: int
    def __init__(self, request_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., team_id: _Optional[str] = ..., key_id: _Optional[str] = ..., subscription_id: _Optional[str] = ..., alias: _Optional[str] = ..., max_cost_micro_usd: _Optional[int] = ..., estimated_tokens: _Optional[int] = ..., reservation_ttl_seconds: _Optional[int] = ..., count_requests: _Optional[int] = ..., cache_hit: _Optional[bool] = ..., tickets: _Optional[int] = ..., ticket_max_cost_micro_usd: _Optional[int] = ..., ticket_tokens: _Optional[int] = ...) -> None: ...

class AdmitResponse(_message.Message):
    __slots__ = ("admitted", "code", "message", "retry_after_seconds", "token_limit", "token_remaining", "token_reset_ms", "unrestricted_ttl_ms", "request_limit", "request_remaining", "request_reset_ms", "ticket_ids", "ticket_ttl_ms", "ticket_window_start_ms")
    ADMITTED_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_LIMIT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_REMAINING_FIELD_NUMBER: _ClassVar[int]
    TOKEN_RESET_MS_FIELD_NUMBER: _ClassVar[int]
    UNRESTRICTED_TTL_MS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_LIMIT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_REMAINING_FIELD_NUMBER: _ClassVar[int]
    REQUEST_RESET_MS_FIELD_NUMBER: _ClassVar[int]
    TICKET_IDS_FIELD_NUMBER: _ClassVar[int]
    TICKET_TTL_MS_FIELD_NUMBER: _ClassVar[int]
    TICKET_WINDOW_START_MS_FIELD_NUMBER: _ClassVar[int]
    admitted: bool
    code: str
    message: str
    retry_after_seconds: int
    token_limit: int
    token_remaining: int
    token_reset_ms: int
    unrestricted_ttl_ms: int
    request_limit: int
    request_remaining: int
    request_reset_ms: int
    ticket_ids: _containers.RepeatedScalarFieldContainer[str]
    ticket_ttl_ms: int
    ticket_window_start_ms: int
    def __init__(self, admitted: _Optional[bool] = ..., code: _Optional[str] = ..., message: _Optional[str] = ..., retry_after_seconds: _Optional[int] = ..., token_limit: _Optional[int] = ..., token_remaining: _Optional[int] = ..., token_reset_ms: _Optional[int] = ..., unrestricted_ttl_ms: _Optional[int] = ..., request_limit: _Optional[int] = ..., request_remaining: _Optional[int] = ..., request_reset_ms: _Optional[int] = ..., ticket_ids: _Optional[_Iterable[str]] = ..., ticket_ttl_ms: _Optional[int] = ..., ticket_window_start_ms: _Optional[int] = ...) -> None: ...

class ReturnTicketsRequest(_message.Message):
    __slots__ = ("tenant_id", "team_id", "key_id", "subscription_id", "alias", "count_requests", "ticket_ids", "window_start_ms")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    COUNT_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    TICKET_IDS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_MS_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    team_id: str
    key_id: str
    subscription_id: str
    alias: str
    count_requests: int
    ticket_ids: _containers.RepeatedScalarFieldContainer[str]
    window_start_ms: int
    def __init__(self, tenant_id: _Optional[str] = ..., team_id: _Optional[str] = ..., key_id: _Optional[str] = ..., subscription_id: _Optional[str] = ..., alias: _Optional[str] = ..., count_requests: _Optional[int] = ..., ticket_ids: _Optional[_Iterable[str]] = ..., window_start_ms: _Optional[int] = ...) -> None: ...

class ReturnTicketsResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CallRecord(_message.Message):
    __slots__ = ("request_id", "start_time", "http_method", "path", "response_code", "response_flags", "duration_ms", "request_bytes", "response_bytes", "upstream_cluster", "upstream_host", "tenant_id", "key_id", "usage", "request_body", "response_body")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    HTTP_METHOD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_CODE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FLAGS_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_BYTES_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_BYTES_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_HOST_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_BODY_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_BODY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    start_time: _timestamp_pb2.Timestamp
    http_method: str
    path: str
    response_code: int
    response_flags: str
    duration_ms: int
    request_bytes: int
    response_bytes: int
    upstream_cluster: str
    upstream_host: str
    tenant_id: str
    key_id: str
    usage: UsageEntry
    request_body: str
    response_body: str
    def __init__(self, request_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., http_method: _Optional[str] = ..., path: _Optional[str] = ..., response_code: _Optional[int] = ..., response_flags: _Optional[str] = ..., duration_ms: _Optional[int] = ..., request_bytes: _Optional[int] = ..., response_bytes: _Optional[int] = ..., upstream_cluster: _Optional[str] = ..., upstream_host: _Optional[str] = ..., tenant_id: _Optional[str] = ..., key_id: _Optional[str] = ..., usage: _Optional[_Union[UsageEntry, _Mapping]] = ..., request_body: _Optional[str] = ..., response_body: _Optional[str] = ...) -> None: ...

class ListCallsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "request_id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    request_id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ListCallsResponse(_message.Message):
    __slots__ = ("calls", "next_page_token")
    CALLS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    calls: _containers.RepeatedCompositeFieldContainer[CallRecord]
    next_page_token: str
    def __init__(self, calls: _Optional[_Iterable[_Union[CallRecord, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
