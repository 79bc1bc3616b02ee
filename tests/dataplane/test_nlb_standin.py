"""The NLB stand-in (proxymx_tools.nlb) in front of real Postfix: what each header placement does
to SMTP, the health checks, and client IP preservation (issue 8, items 1 and 4).

One Postfix configured by the SSM document's real script (``postscreen_upstream_proxy_timeout``
at the document's default, 5s) is shared by the module. Its ``mynetworks`` is 127.0.0.0/24: the
clients (127.0.0.x) may relay to the sink, while the stand-in's health checks come from a "load
balancer node" address outside it (127.0.1.1), as an NLB node's VPC address is outside an MX's
mynetworks. Tests that need another Postfix configuration get their own.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from dataplane_support import private_postfix, require_data_plane, swaks
from proxymx_tools.document import run_document
from proxymx_tools.haproxy import client_address
from proxymx_tools.nlb import (
    HealthCheckSettings,
    LocalNlb,
    TargetGroup,
    parse_proxy_v2,
)
from proxymx_tools.postfix import LocalPostfix, free_port

NODE = "127.0.1.1"  # the load balancer node the health checks come from
QUICK_CHECKS = HealthCheckSettings(
    interval=0.3, timeout=2, healthy_threshold=3, unhealthy_threshold=2, source=NODE
)
NO_BANNER_WAIT = 12.0  # well past postscreen_upstream_proxy_timeout (5s)


@pytest.fixture(scope="module")
def postfix() -> Iterator[LocalPostfix]:
    """A Postfix configured by the document with its default header timeout (5s)."""
    require_data_plane()
    with private_postfix() as configured:
        configured.postconf("-e", "mynetworks=127.0.0.0/24")
        configured.start()
        run = run_document({"SmtpPorts": str(configured.smtp_port)}, mail_config=configured.config_dir)
        assert run.exit_code == 0, run.stdout + run.stderr
        assert configured.postconf("-h", "postscreen_upstream_proxy_timeout").strip() == "5s"
        yield configured


def nlb_for(postfix: LocalPostfix, **attributes: object) -> LocalNlb:
    """A started stand-in with one target group in front of ``postfix`` (health checks off unless given)."""
    attributes.setdefault("health_check", None)
    return LocalNlb(TargetGroup(postfix.smtp_port, **attributes)).start()  # type: ignore[arg-type]


def ended(sock: socket.socket) -> bool:
    """True when the peer closed or reset the connection (no byte arrived before that)."""
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True


def read_banner(sock: socket.socket) -> bytes:
    """Everything up to the final ``220 `` line (postscreen may send a ``220-`` teaser first)."""
    data = b""
    while not re.search(rb"(^|\r\n)220 [^\r\n]*\r\n$", data):
        chunk = sock.recv(1024)
        if not chunk:
            raise AssertionError(f"closed before the banner: {data!r}")
        data += chunk
    return data


def delivered(postfix: LocalPostfix, subject: str, timeout: float = 15) -> str:
    assert postfix.sink is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in postfix.sink.messages():
            text = path.read_text(errors="replace")
            if f"Subject: {subject}" in text:
                return text
        time.sleep(0.1)
    raise AssertionError(f"no message with Subject {subject!r} reached the sink")


# ----- header placement -----------------------------------------------------------------------


def test_default_placement_deadlocks_smtp_and_the_421_never_reaches_the_sender(postfix: LocalPostfix) -> None:
    # Given the header on with AWS's default placement (header only with the client's first bytes)
    nlb = nlb_for(postfix, proxy_protocol_v2=True, target_type="ip")
    try:
        client = client_address(10)
        offset = postfix.log_offset()

        # When an SMTP client connects and, as SMTP clients do, waits for the server's banner
        with socket.create_connection(
            ("127.0.0.1", nlb.port), timeout=NO_BANNER_WAIT, source_address=(client, 0)
        ) as sock:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                sock.recv(1024)
            waited = time.monotonic() - started

            # Then no banner within 12s; postscreen gave up on the header after its 5s timeout
            # and its 421 was dropped by the load balancer, as was its close
            assert waited >= NO_BANNER_WAIT - 0.5
            postfix.wait_for_log(
                r"postscreen\[\d+\]: warning: haproxy read: time limit exceeded$", since=offset
            )
            assert nlb.group.stats.dropped_from_target.startswith(b"421 4.3.2 ")
            assert nlb.group.stats.target_closed_before_payload == 1
            assert nlb.group.stats.headers_sent == []
            # postscreen never learned who the client was
            assert f"[{client}]" not in postfix.log_text()[offset:]

            # And when the client finally speaks, the connection is gone: it is reset
            sock.sendall(b"EHLO client.proxymx.test\r\n")
            assert ended(sock)
            assert nlb.group.stats.clients_reset == 1
    finally:
        nlb.stop()


def test_on_first_ack_greets_at_once_and_delivers_with_the_clients_address(postfix: LocalPostfix) -> None:
    # Given the header on with on_first_ack (what AWS Support switches on), an IP target (no client
    # IP preservation: the address can only come from the header)
    nlb = nlb_for(postfix, proxy_protocol_v2=True, header_placement="on_first_ack", target_type="ip")
    try:
        client = client_address(11)
        escaped = re.escape(client)
        offset = postfix.log_offset()

        # When a client connects, Then the banner comes at once, long before the 5s timeout
        with socket.create_connection(
            ("127.0.0.1", nlb.port), timeout=10, source_address=(client, 0)
        ) as sock:
            started = time.monotonic()
            banner = sock.recv(1024)
            assert banner.startswith(b"220 "), banner
            assert time.monotonic() - started < 3
            sock.sendall(b"QUIT\r\n")
            assert sock.recv(1024).startswith(b"221 ")

        # And a message sent through it is delivered
        subject = f"nlb on_first_ack from {client}"
        sent = swaks(nlb.port, client=client, subject=subject)
        assert sent.returncode == 0, sent.stdout
        message = delivered(postfix, subject)

        # And postscreen and smtpd log the client's own address (postscreen's "to" is the listener)
        postfix.wait_for_log(
            rf"postscreen\[\d+\]: CONNECT from \[{escaped}\]:\d+ to \[127\.0\.0\.1\]:{nlb.port}$",
            since=offset,
        )
        postfix.wait_for_log(rf"smtpd\[\d+\]: connect from unknown\[{escaped}\]$", since=offset)
        assert re.search(rf"^Received: from client\.proxymx\.test \(unknown \[{escaped}\]\)", message, re.M)
        assert "[127.0.0.1]" not in " ".join(re.findall(r"CONNECT from \S+", postfix.log_text()[offset:]))
        # the header the stand-in sent names the client and the listener
        header = parse_proxy_v2(nlb.group.stats.headers_sent[0])
        assert header.command == "PROXY"
        assert header.source is not None and header.source[0] == client
        assert header.destination == ("127.0.0.1", nlb.port)
    finally:
        nlb.stop()


def test_client_address_override_reaches_a_postfix_the_document_configured() -> None:
    # Given a Postfix with Debian's test setting inet_protocols = ipv4 in main.cf, configured by the
    # document (which lets postscreen, smtpd pass and submission read IPv6 header addresses with
    # per-service -o inet_protocols=all, main.cf untouched: docs/postfix.md), and the stand-in
    # writing 2001:db8::7 into the header as the client's address (data, never traffic)
    require_data_plane()
    with private_postfix() as postfix:
        # (a short greet test: 2001:db8::7 is not in mynetworks, so postscreen runs it)
        postfix.postconf("-e", "postscreen_greet_wait=2s")
        postfix.start()
        run = run_document({"SmtpPorts": str(postfix.smtp_port)}, mail_config=postfix.config_dir)
        assert run.exit_code == 0, run.stdout + run.stderr
        assert postfix.postconf("-h", "inet_protocols").strip() == "ipv4"
        nlb = nlb_for(
            postfix,
            proxy_protocol_v2=True,
            header_placement="on_first_ack",
            target_type="ip",
            client_address_override="2001:db8::7",
        )
        try:
            # When a client connects through it
            offset = postfix.log_offset()
            with socket.create_connection(("127.0.0.1", nlb.port), timeout=15) as sock:
                read_banner(sock)
                sock.sendall(b"QUIT\r\n")
                assert sock.recv(1024).startswith(b"221 ")
            # Then the header's address is the client's, for postscreen and smtpd alike (the
            # IPv4-mapped listener address is logged as plain IPv4)
            postfix.wait_for_log(
                rf"postscreen\[\d+\]: CONNECT from \[2001:db8::7\]:\d+ to \[127\.0\.0\.1\]:{nlb.port}$",
                since=offset,
            )
            postfix.wait_for_log(r"smtpd\[\d+\]: connect from unknown\[2001:db8::7\]$", since=offset)
        finally:
            nlb.stop()


# ----- health checks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("placement", "node", "log_lines"),
    [
        # Nothing is sent (no payload, no header): postscreen reads EOF where the header should be
        ("on_first_ack_with_payload", NODE, [r"postscreen\[\d+\]: warning: haproxy read: EOF$"]),
        # The NLB's LOCAL header: postscreen takes the real endpoints, then the check hangs up
        (
            "on_first_ack",
            NODE,
            [
                r"postscreen\[\d+\]: CONNECT from \[127\.0\.1\.1\]:\d+ to \[127\.0\.0\.1\]:{port}$",
                r"postscreen\[\d+\]: HANGUP after \S+ from \[127\.0\.1\.1\]:\d+ "
                r"in tests before SMTP handshake$",
                r"postscreen\[\d+\]: DISCONNECT \[127\.0\.1\.1\]:\d+$",
            ],
        ),
        # A node inside mynetworks is allowlisted: each check reaches smtpd, which sees it leave
        (
            "on_first_ack",
            "127.0.0.1",
            [
                r"postscreen\[\d+\]: CONNECT from \[127\.0\.0\.1\]:\d+ to \[127\.0\.0\.1\]:{port}$",
                r"postscreen\[\d+\]: ALLOWLISTED \[127\.0\.0\.1\]:\d+$",
                r"smtpd\[\d+\]: connect from unknown\[127\.0\.0\.1\]$",
                r"smtpd\[\d+\]: lost connection after CONNECT from unknown\[127\.0\.0\.1\]$",
            ],
        ),
    ],
)
def test_health_checks_keep_a_configured_target_healthy(
    postfix: LocalPostfix, placement: str, node: str, log_lines: list[str]
) -> None:
    # Given the header on, with this placement, and quick TCP health checks from the node address
    offset = postfix.log_offset()
    checks = replace(QUICK_CHECKS, source=node)
    nlb = nlb_for(postfix, proxy_protocol_v2=True, header_placement=placement, health_check=checks)
    try:
        # When the checks run, Then the target becomes healthy and stays so
        nlb.group.wait_for_health("healthy", timeout=15)
        time.sleep(1)
        assert nlb.group.health_state == "healthy"
        assert all(nlb.group.health.checks)

        # And the mail log shows what we measured for each check
        for line in log_lines:
            postfix.wait_for_log(line.format(port=postfix.smtp_port), since=offset)
        log = postfix.log_text()[offset:]
        if node == NODE:
            assert "smtpd" not in log  # outside mynetworks no check ever reaches an smtpd
        if placement == "on_first_ack_with_payload":
            assert "CONNECT from" not in log
    finally:
        nlb.stop()


def test_a_dead_target_turns_unhealthy_and_a_live_one_healthy_again() -> None:
    # Given a target group whose target port has no listener
    port = free_port()
    nlb = LocalNlb(
        TargetGroup(port, proxy_protocol_v2=True, health_check=replace(QUICK_CHECKS, source="127.0.0.1"))
    )
    nlb.start()
    try:
        # When the checks run, Then the target goes from initial to unhealthy
        assert nlb.group.wait_for_health("unhealthy", timeout=15) == "unhealthy"
        assert not any(nlb.group.health.checks)

        # When something listens there again, Then it turns healthy after the healthy threshold
        with socket.create_server(("127.0.0.1", port)) as listener:
            listener.settimeout(0.1)
            nlb.group.wait_for_health("healthy", timeout=15)
            checks = nlb.group.health.checks
            assert checks[-QUICK_CHECKS.healthy_threshold :] == [True] * QUICK_CHECKS.healthy_threshold
    finally:
        nlb.stop()


# ----- client IP preservation -----------------------------------------------------------------


@pytest.fixture
def unconfigured_postfix() -> Iterator[LocalPostfix]:
    """Debian's default Postfix (plain smtpd on the SMTP port), expecting no header."""
    require_data_plane()
    with private_postfix() as postfix:
        yield postfix.start()


@pytest.mark.parametrize(
    ("target_type", "seen_as"),
    [("instance", "client"), ("ip", "load balancer")],
)
def test_preserved_client_ip_shows_the_client_without_any_header(
    unconfigured_postfix: LocalPostfix, target_type: str, seen_as: str
) -> None:
    # Given the header OFF in front of a Postfix that expects none, instance targets (client IP
    # preservation on by default) or IP targets (off by default)
    postfix = unconfigured_postfix
    nlb = nlb_for(postfix, target_type=target_type)
    try:
        client = client_address(12)
        expected = client if seen_as == "client" else "127.0.0.1"
        subject = f"preserve {target_type}"
        offset = postfix.log_offset()

        # When a client sends a message through it
        sent = swaks(nlb.port, client=client, subject=subject)

        # Then it is delivered, and smtpd and the Received: header name the client itself with
        # preservation on, the load balancer's address with it off
        assert sent.returncode == 0, sent.stdout
        postfix.wait_for_log(rf"smtpd\[\d+\]: connect from unknown\[{re.escape(expected)}\]$", since=offset)
        message = delivered(postfix, subject)
        assert re.search(
            rf"^Received: from client\.proxymx\.test \(unknown \[{re.escape(expected)}\]\)", message, re.M
        )
        assert nlb.group.stats.headers_sent == []
    finally:
        nlb.stop()


def test_stop_closes_every_connection(postfix: LocalPostfix) -> None:
    # Given a client in the middle of a session through the stand-in
    nlb = nlb_for(postfix, proxy_protocol_v2=True, header_placement="on_first_ack", target_type="ip")
    with socket.create_connection(
        ("127.0.0.1", nlb.port), timeout=10, source_address=(client_address(13), 0)
    ) as sock:
        assert sock.recv(1024).startswith(b"220")

        # When the stand-in stops
        nlb.stop()

        # Then the client's connection is closed (EOF or reset)
        assert ended(sock)

    # And a restart listens on the same port again
    port = nlb.port
    nlb.start()
    try:
        assert nlb.port == port
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            assert sock.recv(1024).startswith(b"220")
    finally:
        nlb.stop()
    with socket.create_server(("127.0.0.1", port)):
        pass  # and the port is free once it stopped
