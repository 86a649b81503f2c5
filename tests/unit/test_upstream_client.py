"""The router's lean client for provider calls (lockgate/upstream_client.py),
unary and streamed, against real local servers that answer exactly the bytes
each test scripts: framing (content-length, chunked, the connection's end),
decoding, bounds, keep-alive reuse and its limits, failures, deadlines, a
stream's back-pressure, TLS, and how UpstreamHTTP maps each failure."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import ssl
import zlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lockgate import upstream_stream
from lockgate.errors import RateLimited, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from lockgate.upstream_client import (
    BadResponse,
    RefusedRequest,
    ResponseTooLarge,
    UpstreamClient,
    UpstreamConnectError,
)
from lockgate.upstream_stream import STREAM_BUFFER_BYTES
from services.router.config import TimeoutsConfig
from services.router.providers.http import UpstreamHTTP

MAX = 1 << 20
TIMEOUTS = TimeoutsConfig(connect=1, first_token=1, total=2)


def reply(body: bytes, *, status: str = "200 OK", headers: tuple[str, ...] = ()) -> bytes:
    head = [f"HTTP/1.1 {status}", f"content-length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class ScriptedServer:
    """Answers each request with the next scripted action: bytes to send (then
    keep the connection), a list of bytes and pauses (float seconds) between
    them, ("close", bytes) to send and close, or "hang"."""

    def __init__(self, script: list):
        self.script = list(script)
        self.requests: list[bytes] = []
        self.connections = 0
        self.open_now = 0
        self.most_open = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self.handlers: set[asyncio.Task] = set()
        self.writers: set[asyncio.StreamWriter] = set()
        self.done = asyncio.Event()

    async def __aenter__(self) -> ScriptedServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        # Each handler ends on its own (a hung one is released, the others see
        # their connection end), so that none is left for the loop to cancel.
        self.done.set()
        for writer in self.writers:
            writer.close()
        await asyncio.wait_for(asyncio.gather(*self.handlers), 5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat/completions"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.handlers.add(asyncio.current_task())
        self.writers.add(writer)
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                self.requests.append(head + await reader.readexactly(length))
                action = self.script.pop(0)
                if action == "hang":
                    await self.done.wait()
                    return
                if isinstance(action, tuple):
                    writer.write(action[1])
                    await writer.drain()
                    writer.close()
                    return
                if isinstance(action, list):  # bytes, and pauses (seconds) between them
                    for part in action:
                        if isinstance(part, float):
                            await asyncio.sleep(part)
                        else:
                            writer.write(part)
                            await writer.drain()
                    continue
                writer.write(action)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self.open_now -= 1
            writer.close()


@pytest.fixture
async def client():
    c = UpstreamClient(max_connections=8)
    yield c
    c.close()


async def post(client: UpstreamClient, url: str, body: bytes = b'{"q":1}', within: float = 5,
               **headers: str):
    return await client.post(url, body, {"content-type": "application/json", **headers},
                              connect_timeout=1, max_bytes=MAX, within=within)


# -- framing and decoding --------------------------------------------------------------


async def test_a_content_length_answer_and_the_request_as_sent(client):
    async with ScriptedServer([reply(b'{"ok":true}', headers=("Retry-After: 2",))]) as server:
        answer = await post(client, server.url + "?api-version=1", authorization="Bearer k")
    assert (answer.status, answer.body) == (200, b'{"ok":true}')
    assert answer.headers["retry-after"] == "2"
    request = server.requests[0]
    assert request.startswith(b"POST /v1/chat/completions?api-version=1 HTTP/1.1\r\n")
    assert f"host: 127.0.0.1:{server.port}\r\n".encode() in request
    assert b"authorization: Bearer k\r\n" in request
    assert b"content-length: 7\r\n" in request and request.endswith(b'\r\n\r\n{"q":1}')


async def test_a_chunked_answer(client):
    chunked = (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
               b"4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n")
    async with ScriptedServer([chunked, reply(b"{}")]) as server:
        assert (await post(client, server.url)).body == b'{"a":1}'
        await post(client, server.url)
    assert server.connections == 1  # chunked framing ended the message: reused


async def test_an_answer_that_ends_with_the_connection(client):
    async with ScriptedServer([("close", b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{\"b\":2}"),
                               reply(b"{}")]) as server:
        assert (await post(client, server.url)).body == b'{"b":2}'
        await post(client, server.url)
    assert server.connections == 2


@pytest.mark.parametrize("encoding, encode", [
    ("gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some servers send
])
async def test_compressed_answers_are_decoded(client, encoding, encode):
    body = b'{"text":"' + b"x" * 5000 + b'"}'
    async with ScriptedServer([reply(encode(body), headers=(f"content-encoding: {encoding}",))]
                              ) as server:
        assert (await post(client, server.url)).body == body
    assert b"accept-encoding: gzip, deflate\r\n" in server.requests[0]


async def test_an_unknown_encoding_is_refused(client):
    async with ScriptedServer([reply(b"??", headers=("content-encoding: br",))]) as server:
        with pytest.raises(BadResponse, match="br"):
            await post(client, server.url)


# -- bounds ------------------------------------------------------------------------------


async def test_bounds_on_declared_streamed_and_decoded_sizes():
    small = UpstreamClient(max_connections=2)
    bomb = gzip.compress(b"0" * 100_000)
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + b"400\r\n" + b"y" * 1024
    async with ScriptedServer([reply(b"z" * 2000), ("close", chunked),
                               reply(bomb, headers=("content-encoding: gzip",))]) as server:
        for _ in range(3):
            with pytest.raises(ResponseTooLarge):
                await small.post(server.url, b"{}", {}, connect_timeout=1, max_bytes=1000,
                                 within=5)
    small.close()


async def test_a_header_that_could_split_the_request_is_refused_before_connecting(client):
    async with ScriptedServer([]) as server:
        with pytest.raises(RefusedRequest, match="control character"):
            await post(client, server.url, **{"x-evil": "a\r\nhost: elsewhere"})
        with pytest.raises(RefusedRequest, match="header name"):
            await client.post(server.url, b"{}", {"bad name": "v"}, connect_timeout=1,
                              max_bytes=MAX, within=5)
        with pytest.raises(RefusedRequest, match="ISO-8859-1"):
            await post(client, server.url, **{"x-name": "Zoë ☃"})
        with pytest.raises(UpstreamError, match="not sent"):
            await UpstreamHTTP("p", upstream=client).post_json(
                server.url, {}, {"x-evil": "a\nb"}, TIMEOUTS)
    assert server.connections == 0


async def test_only_http_and_https(client):
    with pytest.raises(RefusedRequest, match="scheme"):
        await post(client, "ftp://127.0.0.1/x")


# -- keep-alive ---------------------------------------------------------------------------


async def test_connections_are_reused_and_bounded():
    bounded = UpstreamClient(max_connections=2)
    async with ScriptedServer([reply(b"{}")] * 10) as server:
        await asyncio.gather(*(post(bounded, server.url) for _ in range(10)))
    assert server.most_open <= 2 and server.connections <= 2
    bounded.close()


async def test_connection_close_is_honoured(client):
    async with ScriptedServer([reply(b"{}", headers=("connection: close",)), reply(b"{}")]
                              ) as server:
        await post(client, server.url)
        await post(client, server.url)
    assert server.connections == 2


async def test_a_connection_the_server_closed_while_idle_is_not_used():
    client = UpstreamClient(max_connections=2)
    async with ScriptedServer([("close", reply(b"{}")), reply(b'{"second":1}')]) as server:
        await post(client, server.url)
        await asyncio.sleep(0.05)  # the server's close arrives while the connection is idle
        assert (await post(client, server.url)).body == b'{"second":1}'
    assert server.connections == 2
    client.close()


async def test_the_oldest_idle_connection_is_closed_once_idle_too_long():
    client = UpstreamClient(max_connections=4, idle_seconds=0.2)
    async with ScriptedServer([reply(b"{}")] * 12) as server:
        await asyncio.gather(*(post(client, server.url) for _ in range(2)))  # two connections
        assert server.open_now == 2
        for _ in range(8):  # steady traffic keeps reusing the newest
            await post(client, server.url)
            await asyncio.sleep(0.04)
        assert server.open_now == 1 and server.connections == 2
    client.close()


async def test_a_connection_idle_too_long_is_dropped():
    client = UpstreamClient(max_connections=2, idle_seconds=0.05)
    async with ScriptedServer([reply(b"{}"), reply(b"{}")]) as server:
        await post(client, server.url)
        await asyncio.sleep(0.1)
        await post(client, server.url)
    assert server.connections == 2
    client.close()


# -- failures, mapped as UpstreamHTTP maps them ------------------------------------------------


def upstream(client: UpstreamClient) -> UpstreamHTTP:
    return UpstreamHTTP("p", upstream=client)


async def test_refused_is_unreachable(client):
    async with ScriptedServer([]) as server:
        url = server.url
    with pytest.raises(UpstreamConnectError):
        await post(client, url)
    with pytest.raises(UpstreamUnavailable, match="unreachable"):
        await upstream(client).post_json(url, {}, {}, TIMEOUTS)


async def test_closed_mid_answer(client):
    async with ScriptedServer([("close", reply(b"x" * 100)[:-50])] * 2) as server:
        with pytest.raises(ConnectionResetError):
            await post(client, server.url)
        with pytest.raises(UpstreamError, match="closed the connection"):
            await upstream(client).post_json(server.url, {}, {}, TIMEOUTS)


async def test_a_malformed_answer(client):
    async with ScriptedServer([("close", b"NOT HTTP AT ALL\r\n\r\n")] * 2) as server:
        with pytest.raises(BadResponse):
            await post(client, server.url)
        with pytest.raises(UpstreamError, match="unreadable"):
            await upstream(client).post_json(server.url, {}, {}, TIMEOUTS)


async def test_a_silent_provider_times_out_and_its_connection_is_not_reused(client):
    async with ScriptedServer(["hang", reply(b'{"ok":1}')]) as server:
        with pytest.raises(UpstreamTimeout):
            await upstream(client).post_json(
                server.url, {}, {}, TimeoutsConfig(connect=1, first_token=1, total=0.2))
        assert await upstream(client).post_json(server.url, {}, {}, TIMEOUTS) == {"ok": 1}
    assert server.connections == 2


async def test_the_deadline_bounds_the_answer_and_its_timer_goes_with_the_call(client):
    loop = asyncio.get_running_loop()
    async with ScriptedServer([reply(b'{"ok":1}'), "hang"]) as server:
        assert (await post(client, server.url, within=0.3)).body == b'{"ok":1}'
        await asyncio.sleep(0.4)  # past the first call's deadline: nothing fires on the idle one
        assert len(client.idle_connections()) == 1
        started = loop.time()
        with pytest.raises(TimeoutError):
            await post(client, server.url, within=0.2)
        assert 0.15 < loop.time() - started < 1.0
    assert client.idle_connections() == []  # the timed-out connection was closed


async def test_the_deadline_bounds_the_wait_for_a_free_connection():
    client = UpstreamClient(max_connections=1)
    async with ScriptedServer(["hang"]) as server:
        busy = asyncio.create_task(post(client, server.url, within=1.0))
        await asyncio.sleep(0.05)
        started = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            await post(client, server.url, within=0.2)  # never got a connection
        assert asyncio.get_running_loop().time() - started < 0.6
        with pytest.raises(TimeoutError):
            await busy
    assert server.connections == 1
    assert not client._slots.locked()  # both slots given back
    client.close()


async def test_an_error_status_keeps_its_retry_after(client):
    body = b'{"error":{"message":"slow down"}}'
    async with ScriptedServer([reply(body, status="429 Too Many Requests",
                                     headers=("Retry-After-Ms: 1500",))]) as server:
        with pytest.raises(RateLimited) as err:
            await upstream(client).post_json(server.url, {}, {}, TIMEOUTS)
    assert err.value.retry_after == 1.5 and "slow down" in str(err.value)


# -- streams -----------------------------------------------------------------------------------

SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def open_stream(client: UpstreamClient, url: str, within: float = 5):
    loop = asyncio.get_running_loop()
    return await client.stream(url, b'{"stream":true}', {"content-type": "application/json"},
                               connect_timeout=1, head_by=loop.time() + within)


async def read_all(stream) -> bytes:
    parts = []
    while piece := await stream.read():
        parts.append(piece)
    return b"".join(parts)


async def test_a_stream_read_to_its_end_gives_its_connection_back(client):
    body = SSE_HEAD + chunk(b"data: 1\n\n") + chunk(b"data: 2\n\n") + b"0\r\n\r\n"
    async with ScriptedServer([body, reply(b'{"ok":1}')]) as server:
        stream = await open_stream(client, server.url)
        assert stream.status == 200 and stream.headers["content-type"] == "text/event-stream"
        assert await read_all(stream) == b"data: 1\n\ndata: 2\n\n"
        assert await stream.read() == b""  # and stays ended
        stream.close()
        stream.close()  # idempotent
        assert len(client.idle_connections()) == 1
        assert (await post(client, server.url)).body == b'{"ok":1}'  # unary, same connection
    assert server.connections == 1
    assert b"accept-encoding: identity" in server.requests[0]


async def test_a_stream_left_midway_is_closed_and_frees_its_slot():
    client = UpstreamClient(max_connections=1)
    unfinished = SSE_HEAD + chunk(b"data: 1\n\n")
    async with ScriptedServer([unfinished, unfinished]) as server:
        for _ in range(2):  # one slot: the second stream gets it only if the first gave it back
            stream = await open_stream(client, server.url, within=1)
            assert await stream.read() == b"data: 1\n\n"
            stream.close()
            assert client.idle_connections() == []
    assert server.connections == 2
    client.close()


async def test_a_stream_closed_at_its_last_event_waits_for_its_end_to_keep_the_connection(client):
    done_event = SSE_HEAD + chunk(b"data: [DONE]\n\n")
    async with ScriptedServer([[done_event, 0.05, b"0\r\n\r\n"], reply(b'{"ok":1}')]) as server:
        stream = await open_stream(client, server.url)
        assert await stream.read() == b"data: [DONE]\n\n"
        stream.close(at_last_event=True)  # the body's end is 50 ms away
        assert client._slots.locked() is False and client._slots._value == 7  # still held
        await asyncio.sleep(0.2)
        assert len(client.idle_connections()) == 1
        assert (await post(client, server.url)).body == b'{"ok":1}'
    assert server.connections == 1
    assert client._slots._value == 8


async def test_a_body_that_does_not_end_after_the_last_event_costs_its_connection(
        client, monkeypatch):
    monkeypatch.setattr(upstream_stream, "DRAIN_SECONDS", 0.1)
    loop = asyncio.get_running_loop()
    async with ScriptedServer([SSE_HEAD + chunk(b"data: [DONE]\n\n"),
                               SSE_HEAD + chunk(b"data: [DONE]\n\n") + chunk(b"x" * 70_000)]
                              ) as server:
        for _ in range(2):  # silent after the last event, then too much after it
            stream = await open_stream(client, server.url)
            assert await stream.read() == b"data: [DONE]\n\n"
            stream.close(at_last_event=True)
            await asyncio.sleep(0.3)
            assert client.idle_connections() == [] and client._slots._value == 8
    assert server.connections == 2
    assert not [t for t in loop._scheduled if not t.cancelled() and "drain" in repr(t)]  # noqa: SLF001


async def test_head_by_bounds_the_head_and_then_the_stream_until_moved(client):
    loop = asyncio.get_running_loop()
    async with ScriptedServer(["hang", SSE_HEAD + chunk(b"data: 1\n\n")]) as server:
        started = loop.time()
        with pytest.raises(TimeoutError):
            await open_stream(client, server.url, within=0.2)  # no head
        assert loop.time() - started < 1.0
        stream = await open_stream(client, server.url, within=0.3)
        assert await stream.read() == b"data: 1\n\n"
        stream.expire_at(loop.time() + 0.2)  # moved: the provider then goes silent
        started = loop.time()
        with pytest.raises(TimeoutError):
            await stream.read()
        assert 0.1 < loop.time() - started < 1.0
        stream.close()
    assert client.idle_connections() == []
    assert not [t for t in loop._scheduled if not t.cancelled() and "expire" in repr(t)]  # noqa: SLF001


async def test_a_deadline_missed_while_the_reader_was_away_is_still_a_timeout(client):
    loop = asyncio.get_running_loop()
    async with ScriptedServer([SSE_HEAD + chunk(b"data: 1\n\n")]) as server:
        stream = await open_stream(client, server.url)
        stream.expire_at(loop.time() + 0.05)
        await asyncio.sleep(0.3)  # expired, then the connection's close came back as lost
        assert await stream.read() == b"data: 1\n\n"  # what had arrived is still read
        with pytest.raises(TimeoutError):
            await stream.read()
        stream.close()


async def test_a_stream_the_provider_cuts_fails_its_reader(client):
    async with ScriptedServer([("close", SSE_HEAD + chunk(b"data: 1\n\n"))]) as server:
        stream = await open_stream(client, server.url)
        assert await stream.read() == b"data: 1\n\n"
        with pytest.raises(ConnectionResetError):
            await stream.read()
        stream.close()


async def test_a_stream_that_ends_with_the_connection_ends_cleanly(client):
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n"
    async with ScriptedServer([("close", head + b"data: 1\n\n")]) as server:
        stream = await open_stream(client, server.url)
        assert await read_all(stream) == b"data: 1\n\n"
        stream.close()
    assert client.idle_connections() == []  # not delimited: never reused


async def test_an_encoded_stream_is_refused(client):
    head = SSE_HEAD.replace(b"\r\n\r\n", b"\r\ncontent-encoding: gzip\r\n\r\n")
    async with ScriptedServer([head + chunk(b"x")]) as server:
        with pytest.raises(BadResponse, match="encoded"):
            await open_stream(client, server.url)
    assert client.idle_connections() == [] and not client._slots.locked()


async def test_a_reader_slower_than_the_provider_pauses_the_socket(client):
    piece = b"data: " + b"x" * 16_000 + b"\n\n"
    body = SSE_HEAD + chunk(piece) * 128 + b"0\r\n\r\n"  # ~2 MB, at once
    async with ScriptedServer([body]) as server:
        stream = await open_stream(client, server.url)
        await asyncio.sleep(0.3)  # the provider sends all it can; nobody reads
        answer = stream._answer  # noqa: SLF001 - the buffer is what is under test
        assert answer.reading_paused
        # Bounded: the buffer stops growing one socket read past its limit.
        assert answer.buffered <= STREAM_BUFFER_BYTES + 256 * 1024
        assert await read_all(stream) == piece * 128  # nothing lost once read
        stream.close()
    assert len(client.idle_connections()) == 1


# -- TLS ---------------------------------------------------------------------------------------


def self_signed(tmp_path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


async def test_https_verifies_the_provider_and_reuses_the_connection(tmp_path):
    cert, key = self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    served = ScriptedServer([reply(b'{"tls":1}'), reply(b'{"tls":2}')])
    served.server = server = await asyncio.start_server(served._serve, "127.0.0.1", 0,
                                                        ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    url = f"https://localhost:{port}/v1/chat/completions"
    try:
        trusting = UpstreamClient(ssl_context=ssl.create_default_context(cafile=cert))
        assert (await post(trusting, url)).body == b'{"tls":1}'
        assert (await post(trusting, url)).body == b'{"tls":2}'
        assert served.connections == 1
        assert f"host: localhost:{port}\r\n".encode() in served.requests[0]
        trusting.close()
        # The system's CAs do not know this certificate: no call is made.
        default = UpstreamClient()
        with pytest.raises(UpstreamConnectError, match="certificate"):
            await post(default, url)
        default.close()
    finally:
        await served.stop()
    assert len(served.requests) == 2
