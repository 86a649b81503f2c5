"""Azure OpenAI (dated API versions, deployment URLs).

Azure serves OpenAI's Chat Completions and Embeddings wire format under
per-deployment URLs, so this adapter is the OpenAI one (providers/openai.py:
same payload, same stream parsing) with Azure's addressing, auth and errors:

- `POST {base_url}/openai/deployments/{deployment}/chat/completions?api-version=…`
  and `…/embeddings?api-version=…`; `model` (the deployment config's model)
  is the Azure deployment name. `api-version` is ProviderConfig.api_version,
  or DEFAULT_API_VERSION, the latest GA data-plane inference version (it
  supports `stream_options.include_usage`, tools, json_schema).
- `api-key: <key>` header instead of `Authorization: Bearer`.
- The body keeps `model` set to the deployment name, as OpenAI's own
  `AzureOpenAI` client sends it; Azure routes by the URL and ignores it, and
  it can never disagree with the URL.
- A prompt rejected by Azure's content filter (400, `error.code`
  `content_filter`, `innererror.content_filter_result`) is
  InvalidRequest(code="content_filter", param="messages") naming the filtered
  categories. A completion cut by the filter keeps finish_reason
  `content_filter`, which is an OpenAI value, unchanged.
- Streams: Azure adds chunks that are not OpenAI chunks: the first one has
  `choices: []` and only `prompt_filter_results` (id/model/object empty), and
  with the asynchronous filter, choices that carry only
  `content_filter_results`/`content_filter_offsets` and no `delta`. Choices
  without a `delta` are dropped, and a chunk left with no choices and no usage
  is dropped whole; the usage chunk (`choices: []`, `usage`) is kept. Azure's
  annotation fields on kept chunks pass through (OpenAI clients ignore them).
- 429s carry `retry-after` / `retry-after-ms`, read by providers/http.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from urllib.parse import quote

from lockgate.errors import InvalidRequest, LockgateError
from lockgate.upstream_client import UpstreamClient
from services.router.config import ProviderConfig, TimeoutsConfig
from services.router.providers.http import api_key
from services.router.providers.openai import OpenAIProvider

#: Latest GA version of Azure OpenAI's data-plane inference API.
DEFAULT_API_VERSION = "2024-10-21"


class AzureOpenAIProvider(OpenAIProvider):
    def __init__(self, name: str, config: ProviderConfig, upstream: UpstreamClient | None = None):
        super().__init__(name, config, upstream)
        self.api_version = config.api_version or DEFAULT_API_VERSION
        self.headers = {"content-type": "application/json"}
        key = api_key(config.api_key_env)
        if key:
            self.headers["api-key"] = key
        self.http.error_hook = self._error

    def url(self, operation: str, model: str) -> str:
        """The deployment's URL: Azure names the deployment (our `model`) in the path."""
        if not model:
            raise InvalidRequest("the Azure deployment name is empty", param="model")
        return (
            f"{self.base_url}/openai/deployments/{quote(model, safe='')}/"
            f"{operation}?api-version={quote(self.api_version, safe='')}"
        )

    async def stream_chat(
        self, body: dict, model: str, timeouts: TimeoutsConfig
    ) -> AsyncIterator[dict]:
        chunks = super().stream_chat(body, model, timeouts)
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                cleaned = openai_chunk(chunk)
                if cleaned is not None:
                    yield cleaned

    def _error(self, status: int, parsed: object, text: str, headers) -> LockgateError | None:
        return content_filter_error(self.name, status, parsed)


def openai_chunk(chunk: dict) -> dict | None:
    """The chunk without Azure's annotation-only choices; None when nothing
    OpenAI-shaped is left (see the module docstring)."""
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return chunk
    kept = [c for c in choices if isinstance(c, dict) and "delta" in c]
    if not kept and chunk.get("usage") is None:
        return None
    if len(kept) != len(choices):
        chunk = {**chunk, "choices": kept}
    return chunk


def content_filter_error(provider: str, status: int, parsed: object) -> LockgateError | None:
    """InvalidRequest for Azure's content-filter refusal; None for other errors
    (the default mapping in providers/http.py applies)."""
    if status != 400 or not isinstance(parsed, dict):
        return None
    error = parsed.get("error")
    if not isinstance(error, dict) or error.get("code") != "content_filter":
        return None
    inner = error.get("innererror")
    result = inner.get("content_filter_result") if isinstance(inner, dict) else None
    flagged = []
    if isinstance(result, dict):
        for category, verdict in result.items():
            if isinstance(verdict, dict) and verdict.get("filtered") is True:
                severity = verdict.get("severity")
                label = f"{category} ({severity})" if isinstance(severity, str) else category
                flagged.append(label)
    reason = f": {', '.join(sorted(flagged))}" if flagged else ""
    return InvalidRequest(
        f"provider {provider!r} refused the request: Azure OpenAI's content filter "
        f"flagged the prompt{reason}",
        code="content_filter",
        param="messages",
    )
