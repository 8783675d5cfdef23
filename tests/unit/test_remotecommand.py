"""The channel protocol's framing and status rules, as client-go reads them (tools/remotecommand v4/v5)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vdpa_operator import remotecommand as rc


@given(st.integers(0, 255), st.binary(max_size=300))
def test_a_frame_is_its_stream_byte_then_the_data(stream: int, data: bytes) -> None:
    assert rc.parse(rc.frame(stream, data)) == (stream, data)


def test_an_empty_message_is_a_protocol_error_and_close_names_its_stream() -> None:
    with pytest.raises(rc.RemoteCommandError, match="no stream id"):
        rc.parse(b"")
    assert rc.parse(rc.close_frame(rc.STDIN)) == (rc.CLOSE, bytes([rc.STDIN]))


@pytest.mark.parametrize("code", [0, 1, 3, 127, 130, 255])
def test_the_status_of_an_exit_code_reads_back_as_that_code(code: int) -> None:
    stream, raw = rc.parse(rc.status_message(rc.exited(code)))
    assert stream == rc.ERROR
    assert rc.exit_code(raw) == code
    status = json.loads(raw)
    assert status["status"] == ("Success" if code == 0 else "Failure")


@pytest.mark.parametrize(("status", "message"), [
    ({"status": "Failure", "reason": "InternalError", "message": "exec: boom"}, "exec: boom"),
    ({"status": "Failure", "reason": "NonZeroExitCode"}, "no ExitCode cause given"),
    ({"status": "Failure", "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode",
                                                                                "message": "x"}]}},
     "invalid exit code value 'x'"),
    ({"status": "Failure", "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode",
                                                                                "message": "256"}]}},
     "invalid exit code value '256'"),
    ({"status": "Unknown"}, "unknown error"),
    ([], "not a Status object"),
])
def test_a_status_without_a_usable_exit_code_is_an_error_saying_why(status: object, message: str) -> None:
    with pytest.raises(rc.RemoteCommandError, match=message):
        rc.exit_code(json.dumps(status).encode())
    with pytest.raises(rc.RemoteCommandError, match="error stream protocol error"):
        rc.exit_code(b"{not json")


def test_the_clients_order_of_subprotocols_wins() -> None:
    assert rc.choose(rc.offered_protocols("v4.channel.k8s.io, v5.channel.k8s.io")) == rc.V4
    assert rc.choose(rc.offered_protocols("channel.k8s.io,v5.channel.k8s.io")) == rc.V5
    assert rc.choose(rc.offered_protocols("v5.channel.k8s.io"), (rc.V4,)) is None
    assert rc.choose(rc.offered_protocols(None)) is None


def test_terminal_sizes_come_whole_however_the_bytes_are_split() -> None:
    reader = rc.ResizeReader()
    encoded = b'{"Width":80,"Height":24}\n{"Width":132,"Height":43}\n'
    sizes = [size for split in (encoded[:10], encoded[10:30], encoded[30:]) for size in reader.feed(split)]
    assert sizes == [rc.TerminalSize(80, 24), rc.TerminalSize(132, 43)]
    assert rc.ResizeReader().feed(b'{"Width":100,"Height":30}') == [rc.TerminalSize(100, 30)]  # no newline
    assert rc.ResizeReader().feed(b'{"Width":-1,"Height":30}\n[]\nnot json\n') == []
