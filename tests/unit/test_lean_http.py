"""lockgate/lean_http.py's response writing: header values never split a response."""

from __future__ import annotations

import pytest

from lockgate.lean_http import header_line, response, status_line


@pytest.mark.parametrize("value", ["a\r\nset-cookie: x", "a\nb", "a\rb", "a\0b"])
def test_a_header_value_with_a_control_character_is_refused(value):
    with pytest.raises(ValueError, match="control character"):
        header_line("x-name", value)


def test_headers_and_status_lines():
    assert header_line("content-type", "application/json") == b"content-type: application/json\r\n"
    assert status_line(429) == b"HTTP/1.1 429 Too Many Requests\r\n"
    assert status_line(599) == b"HTTP/1.1 599 Status\r\n"
    assert response(200, [("x-a", "1")], b"ok").endswith(b"content-length: 2\r\n\r\nok")
