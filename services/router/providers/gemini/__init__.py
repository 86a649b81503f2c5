"""Google Gemini API (generateContent, v1beta) behind the OpenAI chat contract.

One module per job:

* `provider`: `GeminiProvider`, the HTTP calls (wire format, URLs, the API key).
* `request`: OpenAI chat body -> GenerateContentRequest (what is translated,
  accepted without effect, or rejected with 400).
* `schema`: JSON Schema -> Gemini's OpenAPI-subset Schema for tool parameters.
* `response`: GenerateContentResponse -> chat.completion, and the stream's
  events -> chat.completion.chunk objects (`StreamTranslator`).
* `errors`: Google API error answers -> Lockgate errors.
* `embeddings`: OpenAI embeddings <-> batchEmbedContents.
"""

from services.router.providers.gemini.embeddings import from_embed_response, to_embed_request
from services.router.providers.gemini.errors import gemini_error
from services.router.providers.gemini.provider import GeminiProvider
from services.router.providers.gemini.request import to_gemini_request
from services.router.providers.gemini.response import StreamTranslator, from_gemini_response
from services.router.providers.gemini.schema import gemini_schema

__all__ = [
    "GeminiProvider",
    "StreamTranslator",
    "from_embed_response",
    "from_gemini_response",
    "gemini_error",
    "gemini_schema",
    "to_embed_request",
    "to_gemini_request",
]
