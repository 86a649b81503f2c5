"""The router's body logging decisions (services/router/call_bodies.py): which
calls opted in, what a capture keeps, and that metering never fails because of it."""

from __future__ import annotations

from lockgate.governance_view import GovernanceView
from lockgate.identity import Identity
from lockgate.registry.v1 import registry_service_pb2 as reg_pb
from services.router.call_bodies import UNAVAILABLE, BodyLog, CallLogConfig


def view(*, alias_logs: bool, prompt_logs: bool) -> GovernanceView:
    governance = GovernanceView("unused:0", "unit")
    governance.apply(reg_pb.WatchGovernanceResponse(revision=1, snapshot=reg_pb.GovernanceSnapshot(
        aliases=[reg_pb.AliasBinding(alias="chat", api_id="api_m", version="v1",
                                     log_bodies=alias_logs)],
        prompts=[reg_pb.PromptRoute(api_id="api_p", version="v1", log_bodies=prompt_logs)],
    )))
    return governance


def who(api_id: str = "", version: str = "v1") -> Identity:
    return Identity(tenant_id="ten_a", key_id="key_a", api_id=api_id, api_version=version)


def test_the_api_the_call_is_governed_by_decides():
    log = BodyLog(view(alias_logs=True, prompt_logs=False))
    assert log.opted_in(who("api_m"), "chat")
    assert not log.opted_in(who(), "chat")  # ungoverned (auth set no API)
    assert not log.opted_in(who("api_x"), "chat")  # governed by another API
    # A prompt API invocation: its route decides, not the alias it calls.
    assert not log.opted_in(who("api_p"), "chat")
    prompts = BodyLog(view(alias_logs=False, prompt_logs=True))
    assert prompts.opted_in(who("api_p"), "chat")
    assert not prompts.opted_in(who("api_p", "v2"), "chat")
    assert not prompts.opted_in(who("api_m"), "chat")
    assert BodyLog(None).capture(who("api_m"), "chat", {}) is None


def test_a_stream_capture_keeps_text_and_tool_arguments_within_its_bound():
    log = BodyLog(view(alias_logs=True, prompt_logs=False), CallLogConfig(max_body_bytes=1024))
    capture = log.capture(who("api_m"), "chat", {"model": "chat", "messages": []})
    assert capture is not None
    capture.add_chunk({"choices": [{"delta": {"content": "Hello "}}]})
    capture.add_chunk({"choices": [{"delta": {"tool_calls": [
        {"function": {"arguments": '{"to": "ada@example.com"}'}}]}}]})
    capture.add_chunk({"choices": [], "usage": {"prompt_tokens": 1}})
    fields = log.entry_fields(capture)
    assert fields["response_body"] == 'Hello {"to": "[REDACTED:email]"}'
    assert fields["request_body"] == '{"model":"chat","messages":[]}'
    for _ in range(5000):
        capture.add_chunk({"choices": [{"delta": {"content": "more text "}}]})
    assert capture.text_length <= capture.text_bound + len("more text ")
    assert len(log.entry_fields(capture)["response_body"].encode()) <= 1024


def test_bodies_that_cannot_be_prepared_do_not_break_metering():
    log = BodyLog(view(alias_logs=True, prompt_logs=False))
    capture = log.capture(who("api_m"), "chat", {"not json": {1, 2}})  # a set: orjson refuses
    assert log.entry_fields(capture) == {"request_body": UNAVAILABLE,
                                         "response_body": UNAVAILABLE}


def test_a_reload_applies_new_patterns():
    log = BodyLog(view(alias_logs=True, prompt_logs=False))
    capture = log.capture(who("api_m"), "chat", {"q": "EMP-123456 ada@example.com"})
    log.configure(CallLogConfig.model_validate(
        {"redact": [{"name": "employee", "pattern": "EMP-[0-9]{6}"}]}))
    assert log.entry_fields(capture)["request_body"] == \
        '{"q":"[REDACTED:employee] ada@example.com"}'


def test_the_largest_bodies_still_fit_one_spool_record():
    from lockgate.ledger.v1 import ledger_service_pb2 as ledger_pb
    from services.router.spool import MAX_RECORD_BYTES

    biggest = CallLogConfig.model_fields["max_body_bytes"].metadata
    limit = next(m.le for m in biggest if getattr(m, "le", None) is not None)
    log = BodyLog(view(alias_logs=True, prompt_logs=False), CallLogConfig(max_body_bytes=limit))
    text = "€ quoted \" text " * 100_000  # multi-byte, escaped in JSON: grows when dumped
    capture = log.capture(who("api_m"), "chat", {"messages": [{"content": text}]})
    capture.reply = {"choices": [{"message": {"content": text}}]}
    entry = ledger_pb.UsageEntry(request_id="r" * 128, tenant_id="t" * 64,
                                 **log.entry_fields(capture))
    assert len(entry.request_body.encode()) <= limit
    assert len(entry.SerializeToString()) < MAX_RECORD_BYTES
