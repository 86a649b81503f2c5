"""The OpenAI chat completions request body for one invocation of a prompt API version.

Everything in the body comes from the version except the input, which only ever fills
template values: the caller cannot set the model, the bound parameters or the response
format, and the input is validated against the version's input schema first.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from lockgate.prompts.spec import PromptVersionSpec
from lockgate.prompts.template import MAX_OUTPUT_BYTES

#: OpenAI's rule for json_schema names: a-z, A-Z, 0-9, _ and -, at most 64 characters.
_NAME_INVALID = re.compile(r"[^A-Za-z0-9_-]")


def response_format_name(api: str) -> str:
    """The ``json_schema.name`` for an API: its name, made to fit OpenAI's rule."""
    return _NAME_INVALID.sub("_", api)[:64] or "output"


def build_chat_request(
    spec: PromptVersionSpec, input: Any, *, max_prompt_bytes: int = MAX_OUTPUT_BYTES
) -> dict[str, Any]:
    """A new chat completions body: the rendered system/user messages, the model alias,
    the bound parameters and, with an output schema, a strict ``json_schema`` response
    format. Raises ``InputError``/``InputTooLarge`` (invalid input) or ``RenderError``
    (the messages together would exceed ``max_prompt_bytes``)."""
    spec.input_schema.validate(input)
    remaining = max_prompt_bytes
    messages: list[dict[str, str]] = []
    for role, template in (("system", spec.system), ("user", spec.user)):
        if template is None:
            continue
        content = template.render(input, max_bytes=remaining)
        remaining -= len(content.encode("utf-8", "surrogatepass"))
        messages.append({"role": role, "content": content})
    body: dict[str, Any] = {"model": spec.model, "messages": messages}
    body.update(copy.deepcopy(dict(spec.parameters)))
    if spec.output_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": response_format_name(spec.api),
                "schema": copy.deepcopy(dict(spec.output_schema)),
                "strict": True,
            },
        }
    return body
