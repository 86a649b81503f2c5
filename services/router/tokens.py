"""Token estimates for calls whose provider reports no usage.

The ledger meters every call. Most providers report usage; when one does not
(an OpenAI-compatible server without `stream_options` support, a stream cut
short), the router estimates it here with OpenAI's `o200k_base` BPE encoding
(GPT-4o, GPT-4.1, o-series). For other model families the count is an
estimate, typically within ~10-20% of their own tokenizer's.

The encoding ships with the package (data/o200k_base.tiktoken.gz, see
data/README.md for its provenance and licence) and is loaded once per process,
lazily, from that file only: tiktoken is never asked to resolve an encoding by
name, so nothing is downloaded, ever. The decompressed file is checked
against the SHA-256 tiktoken itself expects for `o200k_base`.

Long texts are encoded in segments of at most `_SEGMENT` characters: one
huge regex piece overflows tiktoken's regex stack (a Rust panic, not an
Exception; seen with ~1M spaces). A segment ends right before a space that
follows a non-space character, where a new o200k pre-token always starts, so
the count is exact; only a run of `_SEGMENT` characters without such a space
(pathological input) is cut anywhere, off by a token or so per cut.

Chat prompts follow OpenAI's cookbook ("How to count tokens with tiktoken"):
3 tokens per message, 1 more when it has a `name`, and 3 priming the reply.
Images use OpenAI's documented vision cost (see `image_tokens`).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import math
import threading
from importlib import resources

import orjson
import tiktoken

ENCODING_NAME = "o200k_base"
#: tiktoken_ext/openai_public.py's expected_hash for o200k_base.
ENCODING_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
_DATA_FILE = "o200k_base.tiktoken.gz"

#: o200k_base's pre-tokenization regex, as in tiktoken_ext/openai_public.py.
_PAT_STR = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"""
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"""
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_SPECIAL_TOKENS = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}

#: Longest text encoded in one tiktoken call (see the module docstring).
_SEGMENT = 16 * 1024

# OpenAI's chat framing (cookbook, gpt-4o / gpt-4 family).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMER_TOKENS = 3

# OpenAI's vision pricing (gpt-4o / gpt-4.1 family): a low-detail image costs
# the base; a high-detail one is fitted into 2048x2048, its shortest side
# scaled to 768, then costs the base plus a price per 512px tile.
IMAGE_BASE_TOKENS = 85
IMAGE_TILE_TOKENS = 170
#: High or auto detail with unknown dimensions: OpenAI's worked example, a
#: 1024x1024 image (2x2 tiles) = 765 tokens.
IMAGE_UNKNOWN_SIZE_TOKENS = IMAGE_BASE_TOKENS + 4 * IMAGE_TILE_TOKENS
#: Base64 characters decoded to find an image's size in its header.
_IMAGE_HEADER_B64 = 96 * 1024

_lock = threading.Lock()
_encoding: tiktoken.Encoding | None = None


class EncodingFileError(RuntimeError):
    """The shipped encoding file is missing or corrupt (a broken install)."""


def encoding() -> tiktoken.Encoding:
    """The shipped o200k_base encoding, loaded on first use (once per process)."""
    global _encoding
    enc = _encoding
    if enc is None:
        with _lock:
            if _encoding is None:
                _encoding = _load_encoding()
            enc = _encoding
    return enc


def _load_encoding() -> tiktoken.Encoding:
    try:
        packed = resources.files("services.router.data").joinpath(_DATA_FILE).read_bytes()
        raw = gzip.decompress(packed)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise EncodingFileError(f"cannot read the shipped {ENCODING_NAME} encoding") from exc
    if hashlib.sha256(raw).hexdigest() != ENCODING_SHA256:
        raise EncodingFileError(f"the shipped {ENCODING_NAME} encoding is corrupt")
    ranks: dict[bytes, int] = {}
    for line in raw.splitlines():
        token, _, rank = line.partition(b" ")
        ranks[base64.b64decode(token)] = int(rank)
    enc = tiktoken.Encoding(
        name=ENCODING_NAME,
        pat_str=_PAT_STR,
        mergeable_ranks=ranks,
        special_tokens=_SPECIAL_TOKENS,
    )
    # The Rust core holds its own copy of the 200k ranks; tiktoken keeps the
    # Python dict only to pickle the encoding, which the router never does.
    # Dropping it frees ~30 MB of the router's memory (docs/performance.md).
    enc._mergeable_ranks = {}
    return enc


def count_text(text: str) -> int:
    """Tokens of `text` under o200k_base; special-token text counts as plain text."""
    encode = encoding().encode_ordinary
    total = 0
    for start, end in _segments(text):
        total += len(encode(text[start:end]))
    return total


def _segments(text: str) -> list[tuple[int, int]]:
    """[start, end) bounds of at most `_SEGMENT` characters covering `text`,
    cut before a space that follows a non-space whenever the text has one in
    the second half of the window."""
    bounds = []
    start = 0
    while len(text) - start > _SEGMENT:
        end = start + _SEGMENT
        low = start + _SEGMENT // 2
        cut = text.rfind(" ", low, end)
        while cut != -1 and text[cut - 1].isspace():
            cut = text.rfind(" ", low, cut)
        if cut == -1:
            cut = end
        bounds.append((start, cut))
        start = cut
    if start < len(text):
        bounds.append((start, len(text)))
    return bounds


def estimate_prompt_tokens(body: dict) -> int:
    """Prompt tokens of an OpenAI chat completions request body.

    Messages per OpenAI's cookbook: every string field (role, content, name,
    tool_call_id) is counted, plus 3 per message and 1 per `name`; content
    parts: text counted, images per `image_tokens`, audio and file parts not
    counted (no documented size formula; providers that take them report
    usage). Assistant tool calls count their function name and arguments.
    Tool definitions and a json_schema response format are counted as their
    JSON (the provider renders them into the prompt in its own syntax, of
    similar size). Malformed parts are skipped: this only estimates.
    """
    total = REPLY_PRIMER_TOKENS
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                total += _message_tokens(message)
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        total += count_text(_json(tools))
    functions = body.get("functions")  # the legacy form of tools
    if isinstance(functions, list) and functions:
        total += count_text(_json(functions))
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and isinstance(response_format.get("json_schema"), dict):
        total += count_text(_json(response_format["json_schema"]))
    return total


def estimate_completion_tokens(chunks_text: str, tool_call_args: list[str]) -> int:
    """Completion tokens of a reply: its text plus its tool calls' arguments."""
    return count_text(chunks_text) + sum(count_text(args) for args in tool_call_args)


def _message_tokens(message: dict) -> int:
    tokens = TOKENS_PER_MESSAGE
    for key, value in message.items():
        if isinstance(value, str):
            tokens += count_text(value)
            if key == "name":
                tokens += TOKENS_PER_NAME
        elif key == "content" and isinstance(value, list):
            tokens += sum(_part_tokens(part) for part in value if isinstance(part, dict))
        elif key == "tool_calls" and isinstance(value, list):
            for call in value:
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    for field in ("name", "arguments"):
                        if isinstance(function.get(field), str):
                            tokens += count_text(function[field])
        elif key == "function_call" and isinstance(value, dict):
            for field in ("name", "arguments"):
                if isinstance(value.get(field), str):
                    tokens += count_text(value[field])
    return tokens


def _part_tokens(part: dict) -> int:
    kind = part.get("type")
    if kind == "text" or kind == "refusal":
        text = part.get(kind)
        return count_text(text) if isinstance(text, str) else 0
    if kind == "image_url":
        image = part.get("image_url")
        if isinstance(image, str):  # tolerated shorthand
            return image_tokens(image, None)
        if isinstance(image, dict) and isinstance(image.get("url"), str):
            detail = image.get("detail")
            return image_tokens(image["url"], detail if isinstance(detail, str) else None)
    return 0


def image_tokens(url: str, detail: str | None) -> int:
    """OpenAI's documented image cost (gpt-4o family).

    `low`: 85. `high`, `auto` or none: the tile formula when the size can be
    read from a `data:` URL's PNG, GIF or JPEG header; otherwise (a remote URL
    the gateway does not fetch, another format) 765, OpenAI's 1024x1024
    example, as the usual case.
    """
    if detail == "low":
        return IMAGE_BASE_TOKENS
    size = _data_url_image_size(url)
    if size is None:
        return IMAGE_UNKNOWN_SIZE_TOKENS
    return high_detail_tokens(*size)


def high_detail_tokens(width: int, height: int) -> int:
    """Tile formula: fit in 2048x2048, scale the shortest side to 768, 170 per
    512px tile plus 85."""
    if width <= 0 or height <= 0:
        return IMAGE_BASE_TOKENS
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        scale = 2048 / max(w, h)
        w, h = w * scale, h * scale
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = w * scale, h * scale
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    return IMAGE_BASE_TOKENS + IMAGE_TILE_TOKENS * tiles


def _data_url_image_size(url: str) -> tuple[int, int] | None:
    if not url.startswith("data:"):
        return None
    header, sep, payload = url.partition(",")
    if not sep or not header.endswith(";base64"):
        return None
    prefix = payload[:_IMAGE_HEADER_B64]
    prefix = prefix[: len(prefix) - len(prefix) % 4]
    try:
        head = base64.b64decode(prefix, validate=False)
    except (binascii.Error, ValueError):
        return None
    return _image_size(head)


def _image_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from the first bytes of a PNG, GIF or JPEG file."""
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and len(head) >= 24:
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
    if head[:2] == b"\xff\xd8":
        return _jpeg_size(head)
    return None


#: JPEG start-of-frame markers (baseline, progressive, lossless…), not DHT/JPG/DAC.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(head):
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # stand-alone markers
            i += 2
            continue
        length = int.from_bytes(head[i + 2 : i + 4], "big")
        if marker in _SOF_MARKERS:
            if i + 9 > len(head):
                return None
            height = int.from_bytes(head[i + 5 : i + 7], "big")
            width = int.from_bytes(head[i + 7 : i + 9], "big")
            return width, height
        if length < 2:
            return None
        i += 2 + length
    return None


def _json(value: object) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return ""
