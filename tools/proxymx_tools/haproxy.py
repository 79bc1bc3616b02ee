"""HAProxy on loopback, standing in for the AWS load balancer in front of a local Postfix.

``mode tcp`` like both load balancers, and the PROXY header each one sends:

- ``v1``: ``send-proxy``, what a Classic ELB sends with a ``ProxyProtocolPolicyType`` policy;
- ``v2``: ``send-proxy-v2``, what an NLB target group sends with ``proxy_protocol_v2.enabled``;
- ``off``: plain TCP, a load balancer with the PROXY protocol off.

Clients reach it from distinct loopback addresses (Linux routes all of 127.0.0.0/8 to ``lo``
and lets a socket bind any of them): see :func:`client_address`. ``swaks --local-interface``
binds one; Postfix's ``smtp-source`` has no option to choose its source address, so it
supplies volume (from 127.0.0.1) while swaks supplies the distinct clients.

Nothing here is imported by a Lambda handler.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

from proxymx_tools.postfix import LOOPBACK, free_port, stop_process, wait_for_port

ProxyMode = Literal["v1", "v2", "off"]

SERVER_OPTION: dict[str, str] = {"v1": " send-proxy", "v2": " send-proxy-v2", "off": ""}


def client_address(index: int) -> str:
    """The ``index``-th client address: 127.0.0.2, 127.0.0.3, ... (127.0.0.1 is the proxy's)."""
    if not 0 <= index < 250:
        raise ValueError("client index out of range")
    return f"127.0.0.{index + 2}"


@dataclass
class LocalHaproxy:
    """``haproxy -db`` (foreground) listening on ``127.0.0.1:port``, forwarding to ``backend_port``."""

    root: Path
    backend_port: int
    mode: ProxyMode = "v2"
    port: int = 0
    host: str = LOOPBACK
    backend_host: str = LOOPBACK
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.mode not in SERVER_OPTION:
            raise ValueError(f"unknown proxy mode {self.mode!r}: v1, v2 or off")
        self.root = Path(self.root)
        self.port = self.port or free_port(self.host)

    @property
    def config_path(self) -> Path:
        return self.root / f"haproxy-{self.mode}-{self.port}.cfg"

    @property
    def log_path(self) -> Path:
        return self.root / f"haproxy-{self.mode}-{self.port}.log"

    def config(self) -> str:
        # Timeouts like an NLB's idle timeout are far longer than any test; these only keep
        # a stuck test from hanging. maxconn covers the benchmark's concurrency.
        return (
            "global\n"
            "    maxconn 2000\n"
            "defaults\n"
            "    mode tcp\n"
            "    timeout connect 5s\n"
            "    timeout client 60s\n"
            "    timeout server 60s\n"
            "frontend smtp_in\n"
            f"    bind {self.host}:{self.port}\n"
            "    default_backend postfix\n"
            "backend postfix\n"
            f"    server mx {self.backend_host}:{self.backend_port}{SERVER_OPTION[self.mode]}\n"
        )

    def start(self) -> LocalHaproxy:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config(), encoding="utf-8")
        subprocess.run(["haproxy", "-c", "-q", "-f", str(self.config_path)], check=True, timeout=30)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                ["haproxy", "-db", "-f", str(self.config_path)], stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_for_port(self.host, self.port)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> LocalHaproxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
