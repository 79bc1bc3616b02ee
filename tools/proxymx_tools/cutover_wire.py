"""The fleet-first cutover on the wire (issue 7, item 6): real Postfix, real HAProxy, real mail.

The parts, on loopback only:

- :class:`Fleet`: two private Postfix instances (fresh Debian configuration, NOT configured for
  the PROXY protocol), each on its own loopback address and the SAME port, as two instances
  behind one Classic ELB listen on the same instance port; each relays to its own ``smtp-sink``.
- :class:`RoundRobinProxy`: HAProxy in master-worker mode, round-robin over the fleet, standing
  in for the Classic ELB: plain TCP, or ``send-proxy`` (v1) once the ELB's backend policy says
  so. A switch rewrites the configuration and reloads gracefully (SIGUSR2 to the master: the new
  worker takes the listening sockets over from the old one, ``-x sockpair@``, and the old one
  finishes its sessions), so that the switch itself refuses no connection.
- :class:`PolicyFollower`: the "ELB": reads the Classic backend policy back from the (embedded)
  AWS and switches the proxy when it changes, as the ELB applies its own configuration.
- :class:`MailLoad`: senders on distinct loopback addresses (127.0.0.2, ...) that keep sending,
  each message with its own Message-Id, and count every reply exactly. A 4xx (or a connection
  that fails) is retried after a short backoff, as an MTA retries a deferral; a 5xx is a bounce,
  never retried: the message is lost for the sender.

Why a small Python client and not ``smtp-source``: smtp-source cannot bind a source address
(every session would come from 127.0.0.1, and the test could not tell the proxy's address from
the clients'), does not retry a deferral, and reports failures as text whose counts are not
exact per message. Here each message's fate is known: accepted (once), or bounced, with every
reply code counted.

Nothing here is imported by a Lambda handler.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxymx_tools.embedded import CommandOutcome, RealDocument
from proxymx_tools.haproxy import client_address
from proxymx_tools.postfix import LocalPostfix, is_listening, stop_process, wait_for_port

# Each Postfix of the fleet on its own address, all on the same port (the ELB's instance port).
FLEET_HOSTS = ("127.0.1.1", "127.0.1.2")
PROXY_HOST = "127.0.0.1"
MESSAGE_ID = re.compile(rb"^Message-Id: (<[^>]+>)", re.MULTILINE | re.IGNORECASE)


def _free_common_port(hosts: tuple[str, ...], attempts: int = 50) -> int:
    """A port free on every host at once (the kernel picks it on the first, the others checked)."""
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((hosts[0], 0))
            port = int(sock.getsockname()[1])
        if not any(is_listening(host, port) for host in hosts):
            return port
    raise RuntimeError(f"no port free on all of {hosts}")


# ----------------------------------------------------------------------------- the fleet
@dataclass
class Fleet:
    """Two private Postfix instances behind one instance port; created and started by ``start``."""

    root: Path
    hosts: tuple[str, ...] = FLEET_HOSTS
    port: int = 0
    members: list[LocalPostfix] = field(default_factory=list)

    def start(self) -> Fleet:
        self.port = self.port or _free_common_port(self.hosts)
        for index, host in enumerate(self.hosts):
            postfix = LocalPostfix(
                self.root / f"mx{index + 1}",
                smtp_port=self.port,
                host=host,
                hostname=f"mx{index + 1}.proxymx.test",
            )
            self.members.append(postfix)
            postfix.start()
        return self

    def stop(self) -> None:
        for postfix in self.members:
            postfix.stop()

    def delivered(self) -> list[bytes]:
        """Every Message-Id the sinks hold (one entry per delivery: a duplicate shows twice)."""
        found: list[bytes] = []
        for postfix in self.members:
            if postfix.sink is None:
                continue
            for path in postfix.sink.messages():
                with contextlib.suppress(OSError):
                    match = MESSAGE_ID.search(path.read_bytes())
                    if match:
                        found.append(match.group(1))
        return found

    def wait_delivered(self, expected: set[bytes], timeout: float = 60.0) -> list[bytes]:
        """Wait until every expected Message-Id reached a sink (or the timeout); return them all."""
        deadline = time.monotonic() + timeout
        while True:
            delivered = self.delivered()
            if expected <= set(delivered) or time.monotonic() > deadline:
                return delivered
            time.sleep(0.2)


# ----------------------------------------------------------------------------- the proxy
@dataclass
class RoundRobinProxy:
    """HAProxy (master-worker) on ``127.0.0.1:port``, round-robin over ``backends``."""

    root: Path
    backends: list[tuple[str, int]]
    send_proxy: bool = False
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    switched_at: float | None = field(default=None, init=False)

    @property
    def config_path(self) -> Path:
        return self.root / "haproxy-fleet.cfg"

    @property
    def log_path(self) -> Path:
        return self.root / "haproxy-fleet.log"

    def config(self) -> str:
        option = " send-proxy" if self.send_proxy else ""
        servers = "".join(
            f"    server mx{index + 1} {host}:{port}{option}\n"
            for index, (host, port) in enumerate(self.backends)
        )
        # Long client/server timeouts: a session waiting for postscreen's 421 must not be cut
        # by the proxy. The stats socket exposes the listeners to the next worker on reload.
        return (
            "global\n"
            "    maxconn 2000\n"
            f"    stats socket {self.root / 'admin.sock'} mode 600 level admin expose-fd listeners\n"
            "defaults\n"
            "    mode tcp\n"
            "    timeout connect 5s\n"
            "    timeout client 60s\n"
            "    timeout server 60s\n"
            "frontend smtp_in\n"
            f"    bind {PROXY_HOST}:{self.port}\n"
            "    default_backend fleet\n"
            "backend fleet\n"
            "    balance roundrobin\n"
            f"{servers}"
        )

    def _write_config(self) -> None:
        self.config_path.write_text(self.config(), encoding="utf-8")
        subprocess.run(["haproxy", "-c", "-q", "-f", str(self.config_path)], check=True, timeout=30)

    def loads(self) -> int:
        """How many times the master reported a worker ready (1 after start, +1 per reload)."""
        try:
            return self.log_path.read_text(errors="replace").count("Loading success.")
        except FileNotFoundError:
            return 0

    def start(self) -> RoundRobinProxy:
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = self.port or _free_common_port((PROXY_HOST,))
        self._write_config()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                ["haproxy", "-W", "-db", "-f", str(self.config_path)], stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_for_port(PROXY_HOST, self.port)
            self._wait_loads(1)
        except TimeoutError:
            self.stop()
            raise
        return self

    def _wait_loads(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self.loads() < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"HAProxy did not load {count} time(s): {self.log_path}")
            time.sleep(0.02)

    def switch(self, send_proxy: bool) -> float:
        """Send (or stop sending) the header: new configuration, graceful reload; the time it took."""
        if self.process is None:
            raise RuntimeError("the proxy is not running")
        started = time.monotonic()
        before = self.loads()
        self.send_proxy = send_proxy
        self._write_config()
        os.kill(self.process.pid, signal.SIGUSR2)
        self._wait_loads(before + 1)
        self.switched_at = time.monotonic()
        return self.switched_at - started

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None


# ----------------------------------------------------------------------------- the "ELB"
def classic_sends_v1(elb: Any, name: str, instance_port: int) -> bool:
    """True when the Classic ELB's backend policy on ``instance_port`` is a PROXY protocol policy."""
    description = elb.describe_load_balancers(LoadBalancerNames=[name])["LoadBalancerDescriptions"][0]
    names = sorted(
        {
            policy
            for backend in description.get("BackendServerDescriptions", [])
            if backend.get("InstancePort") == instance_port
            for policy in backend.get("PolicyNames", [])
        }
    )
    if not names:
        return False
    described = elb.describe_load_balancer_policies(LoadBalancerName=name, PolicyNames=names)
    for policy in described["PolicyDescriptions"]:
        attributes = {
            a["AttributeName"]: a["AttributeValue"] for a in policy.get("PolicyAttributeDescriptions", [])
        }
        if (
            policy.get("PolicyTypeName") == "ProxyProtocolPolicyType"
            and attributes.get("ProxyProtocol") == "true"
        ):
            return True
    return False


@dataclass
class PolicyFollower:
    """Polls what the load balancer sends and switches the proxy when it changes (a thread).

    ``sends`` is read on every poll (e.g. :func:`classic_sends_v1` on the embedded AWS); the
    proxy follows within one poll interval plus a graceful reload, as an ELB applies its policy.
    """

    proxy: RoundRobinProxy
    sends: Callable[[], bool]
    interval: float = 0.1
    switches: list[tuple[float, bool]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def sync(self) -> bool:
        """Follow the load balancer once; True when the proxy was switched."""
        wanted = self.sends()
        if wanted == self.proxy.send_proxy:
            return False
        self.proxy.switch(wanted)
        self.switches.append((time.monotonic(), wanted))
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sync()
            except Exception as exc:
                self.errors.append(repr(exc))

    def start(self) -> PolicyFollower:
        self._thread = threading.Thread(target=self._run, name="policy-follower", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


# ----------------------------------------------------------------------------- the senders
@dataclass
class LoadCounts:
    """Exact counts over every sender. ``replies`` counts each reply code a sender read."""

    submitted: int = 0
    accepted: set[bytes] = field(default_factory=set)
    bounced: set[bytes] = field(default_factory=set)
    # Still deferred when the sender was told to give up (MailLoad.stop's timeout): not delivered.
    abandoned: set[bytes] = field(default_factory=set)
    replies: Counter[str] = field(default_factory=Counter)
    connection_errors: int = 0
    ambiguous: int = 0
    first_5xx: float | None = None
    times_421: list[float] = field(default_factory=list)
    # When each session that ended with 421 began (it waited for the header timeout first).
    starts_421: list[float] = field(default_factory=list)

    @property
    def window_421(self) -> float | None:
        """Seconds from the first to the last session that met a configured Postfix with no header."""
        if not self.starts_421:
            return None
        return max(self.starts_421) - min(self.starts_421)

    @property
    def replies_5xx(self) -> int:
        return sum(count for code, count in self.replies.items() if code.startswith("5"))

    @property
    def replies_421(self) -> int:
        return self.replies["421"]


class SmtpReplyError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _read_reply(stream: Any) -> str:
    """One (possibly multi-line) SMTP reply; its code."""
    while True:
        line = stream.readline(4096)
        if not line:
            raise ConnectionError("connection closed")
        if len(line) < 4 or line[3:4] != b"-":
            return str(line[:3].decode(errors="replace"))


@dataclass
class MailLoad:
    """``senders`` threads, each on its own loopback address, sending through ``port`` until stopped."""

    port: int
    senders: int = 4
    retry_after: float = 0.5
    # A pause between two messages of one sender: steady load, not a busy loop on 2 shared cores.
    pace: float = 0.05
    session_timeout: float = 30.0
    counts: LoadCounts = field(default_factory=LoadCounts)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _give_up: threading.Event = field(default_factory=threading.Event, init=False)
    _threads: list[threading.Thread] = field(default_factory=list, init=False)

    def _record(self, code: str) -> None:
        with self._lock:
            self.counts.replies[code] += 1
            if code.startswith("5") and self.counts.first_5xx is None:
                self.counts.first_5xx = time.monotonic()
            if code == "421":
                self.counts.times_421.append(time.monotonic())

    def _expect(self, stream: Any, wanted: str) -> None:
        code = _read_reply(stream)
        self._record(code)
        if code != wanted:
            raise SmtpReplyError(code)

    def send_once(self, client: str, message_id: bytes, subject: str) -> str:
        """One SMTP session: ``accepted``, ``deferred`` (4xx, dropped) or ``bounced`` (5xx)."""
        body = (
            b"From: <stream@example.net>\r\nTo: <sink@example.com>\r\n"
            b"Message-Id: "
            + message_id
            + b"\r\nSubject: "
            + subject.encode()
            + b"\r\n\r\nproxymx cutover\r\n"
        )
        sent_data = False
        started = time.monotonic()
        try:
            with socket.create_connection(
                (PROXY_HOST, self.port), timeout=self.session_timeout, source_address=(client, 0)
            ) as sock:
                stream = sock.makefile("rb")
                self._expect(stream, "220")
                for command, wanted in (
                    (b"EHLO client.proxymx.test", "250"),
                    (b"MAIL FROM:<stream@example.net>", "250"),
                    (b"RCPT TO:<sink@example.com>", "250"),
                    (b"DATA", "354"),
                ):
                    sock.sendall(command + b"\r\n")
                    self._expect(stream, wanted)
                sock.sendall(body + b".\r\n")
                sent_data = True
                self._expect(stream, "250")
                with contextlib.suppress(OSError):
                    sock.sendall(b"QUIT\r\n")
                return "accepted"
        except SmtpReplyError as exc:
            if exc.code == "421":
                with self._lock:
                    self.counts.starts_421.append(started)
            return "bounced" if exc.code.startswith("5") else "deferred"
        except OSError:
            with self._lock:
                self.counts.connection_errors += 1
                # The end of data went out but no reply came: the message may have been queued.
                # The sender retries (at least once), and the sink may then see it twice.
                self.counts.ambiguous += int(sent_data)
            return "deferred"

    def _sender(self, index: int) -> None:
        client = client_address(index)
        sequence = 0
        while not self._stop.is_set():
            sequence += 1
            message_id = f"<wire-{index}-{sequence}@client.proxymx.test>".encode()
            with self._lock:
                self.counts.submitted += 1
            # A deferred message is retried until accepted (even after stop: nothing is dropped by
            # the sender, until stop's timeout gives up); a bounced one is lost for it.
            while True:
                fate = self.send_once(client, message_id, f"cutover {index}-{sequence}")
                if fate != "deferred":
                    break
                if self._give_up.wait(self.retry_after):
                    fate = "abandoned"
                    break
            with self._lock:
                {"accepted": self.counts.accepted, "bounced": self.counts.bounced}.get(
                    fate, self.counts.abandoned
                ).add(message_id)
            self._stop.wait(self.pace)

    def start(self) -> MailLoad:
        for index in range(self.senders):
            thread = threading.Thread(target=self._sender, args=(index,), name=f"sender-{index}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self, timeout: float = 120.0) -> None:
        """Stop sending new messages; wait for the ones in flight to be accepted or bounced."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        # Senders still retrying (a broken path) stop now: their message counts as abandoned.
        self._give_up.set()
        for thread in self._threads:
            thread.join(timeout=self.session_timeout + 5)

    def wait_for(self, accepted: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.counts.accepted) < accepted and time.monotonic() < deadline:
            time.sleep(0.05)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def describe_counts(label: str, counts: LoadCounts, delivered: list[bytes], gap: float | None) -> str:
    """One line with every count, the gap and the 421 window (the tests print it: ``pytest -s``)."""
    return (
        f"{label}: submitted={counts.submitted} accepted={len(counts.accepted)} "
        f"bounced={len(counts.bounced)} abandoned={len(counts.abandoned)} delivered={len(set(delivered))} "
        f"(duplicates {len(delivered) - len(set(delivered))}) 5xx={counts.replies_5xx} "
        f"421={counts.replies_421} connection_errors={counts.connection_errors} "
        f"gap={_seconds(gap)} 421-window={_seconds(counts.window_421)} "
        f"replies={dict(sorted(counts.replies.items()))}"
    )


@contextlib.contextmanager
def running_load(port: int, senders: int = 4) -> Iterator[MailLoad]:
    load = MailLoad(port, senders).start()
    try:
        yield load
    finally:
        load.stop()


# ----------------------------------------------------------------------------- the bench
@dataclass
class Timeline:
    """When things happened (``time.monotonic()``), to measure the header-off + configured gap."""

    configuring: list[float] = field(default_factory=list)
    configured: list[float] = field(default_factory=list)
    switched: float | None = None

    @property
    def gap(self) -> float | None:
        """Seconds from the first instance configured to the proxy sending the header."""
        if not self.configured or self.switched is None:
            return None
        return self.switched - min(self.configured)

    def describe(self) -> str:
        """Each step relative to the first configure: where the gap goes."""
        if not self.configuring:
            return "nothing configured"
        zero = min(self.configuring)
        # Runs in parallel end in any order: the n-th start is paired with the n-th end.
        steps = [
            f"run {index + 1} {start - zero:.2f}s -> {end - zero:.2f}s"
            for index, (start, end) in enumerate(
                zip(sorted(self.configuring), sorted(self.configured), strict=False)
            )
        ]
        if self.switched is not None:
            steps.append(f"header on {self.switched - zero:.2f}s")
        return ", ".join(steps)


@dataclass
class CutoverBench:
    """The fleet, the proxy in front, and a Classic ELB on the embedded AWS that the proxy follows.

    Enter :func:`proxymx_tools.embedded.embedded_aws` first: the ELB and the instances standing
    for the fleet are created there (``proxymx:fleet=mx``, registered with the ELB, listener
    25 -> the fleet's instance port), and ``instance_ids[i]`` is ``fleet.members[i]``.
    """

    root: Path
    elb_name: str = "mx-wire"
    fleet: Fleet = field(init=False)
    proxy: RoundRobinProxy = field(init=False)
    follower: PolicyFollower | None = field(default=None, init=False)
    instance_ids: list[str] = field(default_factory=list, init=False)
    timeline: Timeline = field(default_factory=Timeline, init=False)

    def __post_init__(self) -> None:
        self.fleet = Fleet(self.root / "fleet")

    def start(self, elb: Any) -> CutoverBench:
        from proxymx_tools.seed import register_fleet_instances

        self.fleet.start()
        self.proxy = RoundRobinProxy(
            self.root / "haproxy", [(host, self.fleet.port) for host in self.fleet.hosts]
        )
        self.proxy.start()
        elb.create_load_balancer(
            LoadBalancerName=self.elb_name,
            Listeners=[
                {
                    "Protocol": "TCP",
                    "LoadBalancerPort": 25,
                    "InstanceProtocol": "TCP",
                    "InstancePort": self.fleet.port,
                }
            ],
            AvailabilityZones=["us-east-1a"],
        )
        self.instance_ids = register_fleet_instances(self.elb_name, len(self.fleet.members))
        self.follower = PolicyFollower(
            self.proxy, lambda: classic_sends_v1(elb, self.elb_name, self.fleet.port)
        )
        self.follower.start()
        return self

    def stop(self) -> None:
        if self.follower is not None:
            self.follower.stop()
        with contextlib.suppress(AttributeError):
            self.proxy.stop()
        self.fleet.stop()

    def postfix_of(self, instance_id: str) -> LocalPostfix:
        return self.fleet.members[self.instance_ids.index(instance_id)]

    def document_parameters(self, mode: str = "configure") -> dict[str, str]:
        return {"SmtpPorts": str(self.fleet.port), "Mode": mode}

    def configure(self, index: int) -> Any:
        """Run the document's real script (Mode=configure) on one member, as SSM would."""
        from proxymx_tools.document import run_document

        self.timeline.configuring.append(time.monotonic())
        run = run_document(self.document_parameters(), mail_config=self.fleet.members[index].config_dir)
        if run.exit_code == 0:
            self.timeline.configured.append(time.monotonic())
        return run

    def switch_by_hand(self, elb: Any) -> None:
        """What an operator does with the AWS CLI: the PROXY policy on the instance port, now."""
        from proxymx.loadbalancer.plan import PROXY_POLICY_NAME

        elb.create_load_balancer_policy(
            LoadBalancerName=self.elb_name,
            PolicyName=PROXY_POLICY_NAME,
            PolicyTypeName="ProxyProtocolPolicyType",
            PolicyAttributes=[{"AttributeName": "ProxyProtocol", "AttributeValue": "true"}],
        )
        elb.set_load_balancer_policies_for_backend_server(
            LoadBalancerName=self.elb_name, InstancePort=self.fleet.port, PolicyNames=[PROXY_POLICY_NAME]
        )

    def wait_switched(self, timeout: float = 30.0) -> float:
        """Wait until the proxy follows the ELB and sends the header; when it did."""
        deadline = time.monotonic() + timeout
        while not self.proxy.send_proxy or self.proxy.switched_at is None:
            if time.monotonic() > deadline:
                errors = self.follower.errors if self.follower else []
                raise TimeoutError(f"the proxy did not follow the ELB within {timeout}s {errors}")
            time.sleep(0.02)
        self.timeline.switched = self.proxy.switched_at
        return self.proxy.switched_at

    # ----- the real chain (issue 7.3): EnableProxyProtocol -> SSM -> CheckOutcome -> switch
    def use_real_documents(self, launch: Any) -> None:
        """Register each instance with the embedded SSM (Online) and run the document's real script
        on its own Postfix when a command targets it, recording when each run ended."""
        for index, instance_id in enumerate(self.instance_ids):
            launch.register_instance(instance_id)
            launch.script_outcome(
                TimedDocument(self.fleet.members[index].config_dir, timeline=self.timeline), instance_id
            )


@dataclass(frozen=True)
class TimedDocument(RealDocument):
    """The embedded SSM's real document, noting in ``timeline`` when each run started and proved."""

    timeline: Timeline = field(default_factory=Timeline, compare=False)

    def run(self, parameters: Mapping[str, str]) -> CommandOutcome:
        self.timeline.configuring.append(time.monotonic())
        outcome = super().run(parameters)
        if outcome.status == "Success" and parameters.get("Mode", "configure") == "configure":
            self.timeline.configured.append(time.monotonic())
        return outcome
