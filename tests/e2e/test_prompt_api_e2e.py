"""Prompt APIs through the real stack: publish a template with input and output
schemas, invoke it over REST (`POST /apis/{api}/{version}:invoke`) and gRPC,
see invalid input refused naming the field, template injection rendered as
text, subscriptions enforced, and the call metered under the API version."""

from __future__ import annotations

import json

import grpc
import httpx
import jsonschema
import pytest

from lockgate.router.v1 import router_service_pb2 as router_pb
from lockgate.router.v1 import router_service_pb2_grpc as router_grpc
from lockgate.structs import dict_to_struct
from tests.e2e.test_governance_e2e import (  # noqa: F401 - fixtures shared with the governance tests
    cli_json,
    eventually,
    org,
    stack,
    unique,
)

pytestmark = pytest.mark.e2e

OUTPUT_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["answer", "confidence"],
    "properties": {"answer": {"type": "string", "minLength": 1},
                   "confidence": {"type": "integer", "minimum": 1, "maximum": 5}},
}
SPEC = {
    "model": "demo",
    "system": "You answer questions about {{ product }}.",
    "user": "Q: {{ question }}{{#if customer}} (from {{ customer.name }}){{/if}}",
    "input_schema": {
        "type": "object", "additionalProperties": False, "required": ["product", "question"],
        "properties": {
            "product": {"type": "string", "maxLength": 50},
            "question": {"type": "string", "minLength": 1, "maxLength": 500},
            "customer": {"type": "object", "properties": {"name": {"type": "string"}}},
        },
    },
    "output_schema": OUTPUT_SCHEMA,
    "parameters": {"temperature": 0.2, "max_completion_tokens": 200},
}


def publish_prompt_api(stack, org, directory, spec: dict) -> dict:  # noqa: F811
    """A prompt API of team ml with a published v1 binding `spec`."""
    boss = org["keys"]["boss"]
    name = unique("faq")
    api = cli_json(stack, "apis", "create", "--name", name, "--kind", "prompt",
                   "--description", "Answers about a product", "--owner-team", "ml",
                   key=boss)["api"]
    path = directory / f"{name}.json"
    path.write_text(json.dumps(spec))
    cli_json(stack, "versions", "create", api["id"], "v1", "--description", "first",
             "--prompt-file", str(path), key=boss)
    cli_json(stack, "versions", "publish", api["id"], "v1", key=boss)
    return {"name": name, "id": api["id"]}


@pytest.fixture(scope="module")
def faq(stack, org, tmp_path_factory):  # noqa: F811 - pytest fixtures
    """Structured output, on the simulator."""
    return publish_prompt_api(stack, org, tmp_path_factory.mktemp("prompt"), SPEC)


@pytest.fixture(scope="module")
def echo(stack, org, tmp_path_factory):  # noqa: F811
    """Text output on `resilient`, whose first deployment passes x-sim-* headers on
    (tests/e2e/gateway.yaml): the simulator can echo what it was sent."""
    spec = {key: value for key, value in SPEC.items() if key != "output_schema"}
    return publish_prompt_api(stack, org, tmp_path_factory.mktemp("echo"),
                              {**spec, "model": "resilient"})


def invoke(gateway, key: str, api: str, document: dict, **headers: str) -> httpx.Response:
    return httpx.post(f"{gateway.origin}/apis/{api}/v1:invoke", json={"input": document},
                      headers={"authorization": f"Bearer {key}", **headers}, timeout=15)


def test_invoke_returns_output_that_fits_the_schema(stack, org, faq):  # noqa: F811
    dev = org["keys"]["dev"]  # a developer of the owner team

    def answered():
        reply = invoke(stack, dev, faq["name"], {"product": "Lockgate", "question": "Why?"})
        assert reply.status_code == 200, reply.text
        return reply.json()

    body = eventually(answered)  # the router follows the registry within a second
    jsonschema.validate(body["output"], OUTPUT_SCHEMA)
    assert json.loads(body["text"]) == body["output"]
    assert body["api_id"] == faq["id"] and body["version"] == "v1"
    assert int(body["usage"]["total_tokens"]) > 0

    # The same API over gRPC, by id.
    with grpc.insecure_channel(stack.grpc_target) as channel:
        reply = router_grpc.RouterServiceStub(channel).InvokePromptApi(
            router_pb.InvokePromptApiRequest(
                api=faq["id"], version="v1",
                input=dict_to_struct({"product": "Lockgate", "question": "Why?"})),
            metadata=(("authorization", f"Bearer {dev}"),), timeout=15)
    assert reply.api_id == faq["id"] and reply.output.struct_value["answer"]


def test_invalid_input_is_400_naming_the_field(stack, org, faq):  # noqa: F811
    dev = org["keys"]["dev"]
    for document, field in [
        ({"product": "Lockgate", "question": 5}, "input.question"),
        ({"product": "Lockgate"}, "question"),
        ({"product": "Lockgate", "question": "x", "extra": 1}, "extra"),
        ({"product": "Lockgate", "question": "x", "customer": {"name": 3}},
         "input.customer.name"),
    ]:
        reply = invoke(stack, dev, faq["name"], document)
        assert reply.status_code == 400, reply.text
        assert field in reply.json()["message"]
        assert "Traceback" not in reply.text


def test_template_injection_renders_as_text(stack, org, echo):  # noqa: F811
    dev = org["keys"]["dev"]
    hostile = "{{ product }} {{#each x}}{{this}}{{/each}} {% import os %} ${7*7} __class__"

    def served():  # the router follows the registry within a second
        reply = invoke(stack, dev, echo["name"], {"product": "p", "question": "q"})
        assert reply.status_code == 200, reply.text

    eventually(served)
    reply = invoke(stack, dev, echo["name"],
                   {"product": "Lockgate", "question": hostile, "customer": {"name": "{{ q }}"}},
                   **{"x-sim-echo": "1"})
    assert reply.status_code == 200, reply.text
    # The simulator echoes what it was sent: the values went in literally.
    sent = reply.json()["text"]
    assert "system: You answer questions about Lockgate." in sent
    assert f"user: Q: {hostile} (from {{{{ q }}}})" in sent


def test_another_team_needs_a_subscription(stack, org, faq):  # noqa: F811
    other = org["keys"]["other"]  # a developer of team ops
    reply = invoke(stack, other, faq["name"], {"product": "Lockgate", "question": "Hi"})
    assert reply.status_code == 403
    assert reply.json()["error"]["code"] == "subscription_required"


def test_unknown_version_is_404(stack, org, faq):  # noqa: F811
    reply = httpx.post(f"{stack.origin}/apis/{faq['name']}/v9:invoke",
                       json={"input": {}}, timeout=15,
                       headers={"authorization": f"Bearer {org['keys']['dev']}"})
    assert reply.status_code == 404


def test_invocations_are_metered_under_the_api_version(stack, org, faq):  # noqa: F811
    dev = org["keys"]["dev"]
    assert invoke(stack, dev, faq["name"], {"product": "L", "question": "Q"}).status_code == 200

    def metered():
        done = stack.cli("usage", "--by", "api_id", "--by", "api_version", "--since", "1h",
                         "--csv", "--key", dev)
        assert done.returncode == 0, done.stderr
        assert f"{faq['id']},v1," in done.stdout, done.stdout

    eventually(metered, seconds=20)
