"""The simulator's Google Gemini dialect (Gemini API v1beta, as Google documents it).

One module per job:

* ``routes``: ``POST /v1beta/models/{model}:{method}``, the key check and
  the method handlers (generateContent, streamGenerateContent, embedContent,
  batchEmbedContents).
* ``validate``: the request checks, the way Google's JSON parser makes them.
* ``reply``: the candidates, usageMetadata and safety blocks of a reply.
* ``stream``: the reply in pieces (SSE or a JSON array).
* ``embeddings``: the embedding of one EmbedContentRequest.
* ``errors``: Google-shaped error answers and the injected faults.
"""

from lockgate.sim.gemini.errors import GoogleError
from lockgate.sim.gemini.routes import H_SAFETY_BLOCK, ROUTE, model_action

__all__ = ["H_SAFETY_BLOCK", "ROUTE", "GoogleError", "model_action"]
