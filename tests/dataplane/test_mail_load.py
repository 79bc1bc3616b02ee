"""The senders of the cutover wire test count exactly (proxymx_tools.cutover_wire.MailLoad),
checked against a scripted SMTP server on loopback: the counts the wire test asserts on must be
able to show a 421, a 5xx and a message given up."""

from __future__ import annotations

import socketserver
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from proxymx_tools.cutover_wire import MailLoad

# A server's answer to one session: the reply to send for the greeting and for each command.
Script = Callable[[int], str]


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: ScriptedSmtp = self.server  # type: ignore[assignment]
        with server.lock:
            server.sessions += 1
            number = server.sessions
        mode = server.script(number)
        if mode == "421":
            self.wfile.write(b"421 4.3.2 No system resources\r\n")
            return
        self.wfile.write(b"220 fake ESMTP\r\n")
        in_data = False
        while line := self.rfile.readline():
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    self.wfile.write(b"250 2.0.0 queued\r\n")
                continue
            if mode == "500":
                self.wfile.write(b"500 5.5.2 Error: command not recognized\r\n")
                return
            verb = line[:4].upper()
            if verb == b"DATA":
                in_data = True
                self.wfile.write(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


class ScriptedSmtp(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, script: Script) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = script
        self.sessions = 0
        self.lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.server_address[1])


@pytest.fixture
def smtp() -> Iterator[Callable[[Script], ScriptedSmtp]]:
    started: list[ScriptedSmtp] = []

    def start(script: Script) -> ScriptedSmtp:
        server = ScriptedSmtp(script)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def test_a_deferral_is_retried_and_counted_and_the_message_is_accepted_once(
    smtp: Callable[[Script], ScriptedSmtp],
) -> None:
    # Given a server that defers its first three sessions with 421, then accepts everything
    server = smtp(lambda number: "421" if number <= 3 else "250")
    # When two senders send until 10 messages are accepted
    load = MailLoad(server.port, senders=2, retry_after=0.05).start()
    load.wait_for(10, timeout=20)
    load.stop(timeout=20)
    # Then the three 421s are counted, no message was lost or bounced, each accepted exactly once
    counts = load.counts
    assert counts.replies_421 == 3
    assert len(counts.starts_421) == 3
    assert counts.replies_5xx == 0 and not counts.bounced and not counts.abandoned
    assert counts.submitted == len(counts.accepted) >= 10
    assert counts.replies["354"] == len(counts.accepted)


def test_a_5xx_is_a_bounce_never_retried(smtp: Callable[[Script], ScriptedSmtp]) -> None:
    # Given a server that answers the client's first command with 500 (a header it did not expect)
    server = smtp(lambda _number: "500")
    # When one sender sends for a moment
    load = MailLoad(server.port, senders=1, pace=0.01).start()
    time.sleep(0.5)
    load.stop(timeout=10)
    # Then every message it submitted bounced after one session, and nothing was accepted
    counts = load.counts
    assert counts.submitted == len(counts.bounced) == counts.replies_5xx == server.sessions > 0
    assert not counts.accepted and counts.first_5xx is not None


def test_a_sender_gives_up_when_stopped_on_a_path_that_only_defers(
    smtp: Callable[[Script], ScriptedSmtp],
) -> None:
    # Given a server that defers every session
    server = smtp(lambda _number: "421")
    load = MailLoad(server.port, senders=2, retry_after=0.05).start()
    time.sleep(0.5)
    # When the load is stopped with a short timeout
    started = time.monotonic()
    load.stop(timeout=1)
    # Then it returns soon, and the two messages in flight are counted as abandoned, not accepted
    assert time.monotonic() - started < 10
    counts = load.counts
    assert counts.submitted == len(counts.abandoned) == 2
    assert not counts.accepted
    assert counts.replies_421 == server.sessions
    # and the senders are gone: no session starts after stop returned
    sessions = server.sessions
    time.sleep(0.3)
    assert server.sessions == sessions
