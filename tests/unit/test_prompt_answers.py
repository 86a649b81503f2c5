"""Prompt API answers: text as it is, structured output parsed and checked."""

from __future__ import annotations

import pytest

from lockgate.errors import UpstreamError
from services.router.prompt_api import answer_of

SCHEMA = {"type": "object", "additionalProperties": False, "required": ["answer"],
          "properties": {"answer": {"type": "string"}}}


def reply(content: str, finish: str = "stop") -> dict:
    return {"choices": [{"message": {"role": "assistant", "content": content},
                         "finish_reason": finish}]}


def test_text_answers_are_returned_as_text():
    assert answer_of(reply("Hello."), None) == ("Hello.", "Hello.", "stop")


def test_structured_answers_are_parsed():
    assert answer_of(reply('{"answer": "yes"}'), SCHEMA) == (
        {"answer": "yes"}, '{"answer": "yes"}', "stop")


@pytest.mark.parametrize("content", ['{"answer": 3}', '{"answer": "x", "extra": 1}', "{}",
                                     "not json", '{"answer": "cut', ""])
def test_answers_that_break_the_output_schema_are_upstream_errors(content):
    with pytest.raises(UpstreamError) as raised:
        answer_of(reply(content, "length"), SCHEMA)
    assert raised.value.code == "invalid_structured_output"
    assert content not in raised.value.message or not content
