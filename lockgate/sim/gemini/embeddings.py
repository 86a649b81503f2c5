"""The embeddings of the simulator's Gemini dialect.

``embedContent`` / ``batchEmbedContents``
    ``{"embedding": {"values"}}`` / ``{"embeddings": [{"values"}]}``: the same
    deterministic unit vectors as the OpenAI dialect for the same text
    (``outputDimensionality`` or ``embedding_dimensions`` floats). Every batch
    request must name the path's model (``models/{model}``); at most 100 per
    batch. Gemini returns no token counts here, and neither does the simulator.
"""

from __future__ import annotations

from lockgate.sim import replies
from lockgate.sim.config import MAX_EMBEDDING_DIMENSIONS
from lockgate.sim.gemini.errors import _bad
from lockgate.sim.gemini.validate import _content, _fields

MAX_BATCH_EMBEDDINGS = 100

_EMBED = frozenset({"model", "content", "taskType", "title", "outputDimensionality"})


def _embedding(request: dict, where: str, dims: int, model: str | None) -> dict:
    request = _fields(request, _EMBED, where)
    if model is not None and request.get("model") != model:
        raise _bad(
            f"* BatchEmbedContentsRequest.{where}.model: the model must be the batch's "
            f"model ({model})\n"
        )
    content = _content(request.get("content"), f"{where}.content")
    texts = [p["text"] for p in content["parts"] if isinstance(p.get("text"), str)]
    if len(texts) != len(content["parts"]):
        raise _bad(f"* {where}.content: only text parts can be embedded\n")
    size = request.get("outputDimensionality")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or not (
            1 <= size <= MAX_EMBEDDING_DIMENSIONS
        ):
            raise _bad(f"* {where}.output_dimensionality: must be in "
                       f"[1, {MAX_EMBEDDING_DIMENSIONS}]\n")
        dims = size
    return {"values": replies.embedding("".join(texts).encode(), dims)}

