"""Helpers for the document's data-plane tests: the summary as JSON, raw PROXY headers, a raw
SMTP client, and PATH wrappers that make one Postfix command slow or failing for one run.

The raw client sends the header itself, byte for byte, so a test sees exactly what Postfix does
with a header no HAProxy would send here (an IPv6 client over an IPv4 connection).
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
import socket
import struct
from pathlib import Path
from typing import Any

from proxymx_tools.document import AGENT_PATH, DocumentRun
from proxymx_tools.postfix import LocalPostfix

PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
FINAL_REPLY = re.compile(r"^\d{3}(?: |$)")


def params(postfix: LocalPostfix, **extra: str) -> dict[str, str]:
    return {"SmtpPorts": str(postfix.smtp_port), "UpstreamProxyTimeout": "1s", **extra}


def summary_fields(run: DocumentRun) -> dict[str, Any]:
    """The summary (the last line of stdout) as plain JSON: every schema-2 field, whatever the
    Python model of this branch knows."""
    lines = run.stdout.strip().splitlines()
    assert lines, f"no output; stderr: {run.stderr}"
    data: dict[str, Any] = json.loads(lines[-1])
    assert data["proxymx"] == "postfix-summary" and data["schema"] == 2, lines[-1]
    return data


def config_files(postfix: LocalPostfix) -> dict[str, bytes]:
    return {name: (postfix.config_dir / name).read_bytes() for name in ("main.cf", "master.cf")}


def loopback_address() -> str:
    """A random 127/8 address, so that services of parallel tests never share an address:port."""
    return f"127.{random.randint(16, 250)}.{random.randint(0, 250)}.{random.randint(2, 250)}"


def proxy_v1(src: str, dst: str, sport: int, dport: int) -> bytes:
    family = "TCP6" if ipaddress.ip_address(src).version == 6 else "TCP4"
    return f"PROXY {family} {src} {dst} {sport} {dport}\r\n".encode()


def proxy_v2(src: str, dst: str, sport: int, dport: int) -> bytes:
    """A PROXY v2 header, command PROXY, TCP over IPv4 (0x11) or IPv6 (0x21)."""
    source, destination = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    family = 0x21 if source.version == 6 else 0x11
    block = source.packed + destination.packed + struct.pack("!HH", sport, dport)
    return PROXY_V2_SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(block)) + block


def smtp_replies(
    port: int, first: bytes = b"", *, host: str = "127.0.0.1", timeout: float = 12.0
) -> list[str]:
    """Connect, send ``first`` at once (a PROXY header, or nothing), read the greeting, send QUIT,
    and read until the server hangs up. Every reply line, in order (a 421 instead of a greeting
    ends the exchange early)."""
    lines: list[str] = []
    buffer = b""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        if first:
            sock.sendall(first)

        def read_line() -> str | None:
            nonlocal buffer
            while b"\n" not in buffer:
                try:
                    chunk = sock.recv(4096)
                except (TimeoutError, OSError):
                    return None
                if not chunk:
                    return None
                buffer += chunk
            line, buffer = buffer.split(b"\n", 1)
            return line.decode(errors="replace").rstrip("\r")

        while (line := read_line()) is not None:
            lines.append(line)
            if FINAL_REPLY.match(line):
                break
        if not lines or not lines[-1].startswith("220"):
            return lines
        try:
            sock.sendall(b"QUIT\r\n")
        except OSError:
            return lines
        while (line := read_line()) is not None:
            lines.append(line)
    return lines


def wrapped_path(directory: Path, **commands: str) -> dict[str, str]:
    """An ``env`` for run_document whose PATH runs a shell snippet before the real command.

    ``commands`` maps a command name (postfix, postconf) to a snippet of sh that sees the
    arguments as "$@" and falls through to the real /usr/sbin/<command> unless it exits.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for name, snippet in commands.items():
        wrapper = directory / name
        wrapper.write_text(f'#!/bin/sh\n{snippet}\nexec /usr/sbin/{name} "$@"\n')
        wrapper.chmod(0o755)
    return {"PATH": f"{directory}:{AGENT_PATH}"}
