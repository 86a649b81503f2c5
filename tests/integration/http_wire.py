"""Raw HTTP/1.1 on a socket, for tests of Lockgate's own HTTP listeners: what
arrives is exactly what the server wrote (no client library normalising it)."""

from __future__ import annotations

import asyncio

import httptools


class Response:
    def __init__(self, status: int):
        self.status = status
        self.headers: dict[str, str] = {}
        self.body = b""


class Responses:
    """httptools callbacks collecting every response read on one connection."""

    def __init__(self):
        self.parser = httptools.HttpResponseParser(self)
        self.done: list[Response] = []
        self.headers: dict[str, str] = {}
        self.body = b""

    def on_message_begin(self):
        self.headers, self.body = {}, b""

    def on_header(self, name, value):
        self.headers[name.decode().lower()] = value.decode()

    def on_body(self, body):
        self.body += body

    def on_message_complete(self):
        response = Response(self.parser.get_status_code())
        response.headers, response.body = self.headers, self.body
        self.done.append(response)


async def read_responses(reader, count: int) -> list[Response]:
    responses = Responses()
    while len(responses.done) < count:
        data = await asyncio.wait_for(reader.read(65536), 5)
        if not data:
            break
        responses.parser.feed_data(data)
    return responses.done


async def exchange(port: int, *payloads: bytes, expect: int | None = None) -> list[Response]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for payload in payloads:
            writer.write(payload)
        await writer.drain()
        return await read_responses(reader, expect if expect is not None else len(payloads))
    finally:
        writer.close()


def request(method: str, path: str, body: bytes = b"",
            headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: lockgate", f"content-length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
