"""A stand-in for an AWS Network Load Balancer on loopback, with both PROXY v2 header placements.

HAProxy's ``send-proxy-v2`` writes the header as soon as its connection to the server is up: that
is the NLB's ``on_first_ack`` placement, which a new NLB does not have. This module is a small TCP
proxy of the project's own (stdlib asyncio, run in a thread) that behaves like the real part in the
ways that decide whether SMTP works through it. What it emulates, and where each rule comes from
(found with the project's search tool; the measured consequences are in docs/loadbalancers.md):

- **Header placement.** Target group attribute
  ``proxy_protocol_v2.client_to_server.header_placement``: ``on_first_ack_with_payload`` (the
  default) sends the header only together with the client's first payload; ``on_first_ack`` sends
  it as soon as the connection is acknowledged. The attribute is not in AWS's public attribute
  list and cannot be set by the account: AWS Support switches it on (pires/go-proxyproto PR #25,
  "AWS Notes", 2020; pingcap/docs PR #10455, TiDB's NLB note, 2022; aio-libs/aiosmtpd issue #431,
  2024, for SMTP; istio/istio issue #36104, 2021, shows ``on_first_ack`` set by AWS on an NLB).
- **What the target says before the client's first payload is lost.** TiDB's note (pingcap/docs PR
  #10455, written after pingcap/tidb issue #36312): "before the client sends any data packets,
  data packets sent by the server are dropped in the internal network", and the client "is blocked
  until the client times out". So with the default placement the stand-in opens the target
  connection at once (TiDB's server saw it and timed out waiting for the header, pingcap/tidb PR
  #36301), **drops** every byte the target sends before the client's first payload, and does not
  pass the target's close on either: the client hears nothing. If the target has closed by the
  time the client speaks, the client is reset (what a TCP peer answers for a closed connection;
  not documented by AWS). One report (istio #36104) describes the default as the NLB holding even
  the target's handshake until data arrives; TiDB's timeout shows the target connection exists, so
  the stand-in follows TiDB.
- **Health checks.** AWS: "the proxy protocol header is also included in health check connections
  from the load balancer. However, with health check connections, the client connection
  information is not sent" (Elastic Load Balancing docs, target group attributes, quoted in
  gitlab-org/charts/gitlab MR !3014). What is on the wire: an HTTP health check captured behind an
  NLB (kubernetes/kubernetes issue #57250, 2019) carries a 100-byte v2 header, command LOCAL,
  family byte 0x11, length 84 made of a CRC32C TLV and a 74-byte NOOP TLV, no address block
  (pires/go-proxyproto PR #12 describes the same "LOCAL ... with dummy" fields);
  :func:`nlb_health_check_header` rebuilds it byte for byte, CRC included. A TCP health check has
  no payload: behind an NLB with the default placement nginx logs ``broken header: ""`` for every
  one (kubernetes/ingress-nginx issue #6996, 2021; GitLab MR !3014), i.e. the check opens and
  closes and no byte arrives. So: default placement, the TCP check sends nothing; ``on_first_ack``,
  it sends that LOCAL header, then closes. Success is the TCP connection being established within
  the timeout; defaults as AWS documents them for TCP target groups (CreateTargetGroup API
  reference): interval 30 s, timeout 10 s, 5 successes to become healthy, 2 failures to become
  unhealthy; states ``initial``, ``healthy``, ``unhealthy`` as DescribeTargetHealth names them.
- **Client IP preservation.** ``preserve_client_ip.enabled`` defaults to true for instance
  targets and to false for IP targets with TCP or TLS (Elastic Load Balancing docs, "Edit target
  group attributes for your Network Load Balancer", client IP preservation). With it on, the
  stand-in connects to the target *from the client's own address* (any 127.0.0.0/8 address can be
  bound on Linux's loopback), so a target without any header sees the real client; with it off,
  from the stand-in's own address. ``client_address_override`` puts another address (e.g.
  ``2001:db8::7``) in the header as data only; it is never bound or connected to.

The header is built by this module's own encoder, from haproxy's doc/proxy-protocol.txt (section
2.2): the 12-byte signature, version 2 with command LOCAL (0x0) or PROXY (0x1), AF_INET/AF_INET6
over STREAM, the address block (source address, destination address, source port, destination
port, network byte order), then TLVs. The destination is the address the client connected to, as
HAProxy sends it. When the source is IPv6 and the listener IPv4, the destination is written as the
IPv4-mapped IPv6 address (one family per header, as the specification requires).

Not emulated: TLS listeners, UDP, cross-zone routing, the 350 s idle timeout, and passive health
checks; a target that is unhealthy still gets traffic (with one target an NLB fails open too).
Only loopback: every address it binds or connects to must be in 127.0.0.0/8 or ``::1``.

Nothing here is imported by a Lambda handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import struct
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

LOOPBACK = "127.0.0.1"

HeaderPlacement = Literal["on_first_ack", "on_first_ack_with_payload"]
HEADER_PLACEMENTS: tuple[HeaderPlacement, ...] = ("on_first_ack", "on_first_ack_with_payload")
DEFAULT_HEADER_PLACEMENT: HeaderPlacement = "on_first_ack_with_payload"
TargetType = Literal["instance", "ip"]
HealthState = Literal["initial", "healthy", "unhealthy"]

# ----- the PROXY protocol v2 encoder (haproxy doc/proxy-protocol.txt, section 2.2) -------------

PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
VERSION_2 = 0x20
COMMAND_LOCAL = 0x00
COMMAND_PROXY = 0x01
FAMILY_UNSPEC = 0x00
FAMILY_INET = 0x10
FAMILY_INET6 = 0x20
TRANSPORT_STREAM = 0x01
PP2_TYPE_CRC32C = 0x03
PP2_TYPE_NOOP = 0x04
_HEADER_START = 16  # signature (12) + version/command + family/transport + length (2)


def _crc32c_table() -> tuple[int, ...]:
    # CRC-32C (Castagnoli), reflected polynomial 0x82F63B78, as RFC 4960 appendix B computes it.
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """The CRC32c checksum that PP2_TYPE_CRC32C carries."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def tlv(kind: int, value: bytes = b"") -> bytes:
    """One type-length-value vector: type (1 byte), length (2 bytes, network order), value."""
    if not 0 <= kind <= 0xFF or len(value) > 0xFFFF:
        raise ValueError("a TLV has a one-byte type and at most 65535 bytes of value")
    return struct.pack("!BH", kind, len(value)) + value


def proxy_v2_header(
    command: int,
    family_transport: int,
    address_block: bytes = b"",
    tlvs: bytes = b"",
    *,
    checksum: bool = False,
) -> bytes:
    """Signature, version 2 + ``command``, ``family_transport``, length, addresses, TLVs.

    ``checksum`` puts a PP2_TYPE_CRC32C TLV first among the TLVs (where the NLB puts it), computed
    over the whole header with the checksum field zeroed (section 2.2.3).
    """
    if command not in (COMMAND_LOCAL, COMMAND_PROXY):
        raise ValueError(f"unknown PROXY v2 command {command:#x}")
    if checksum:
        tlvs = tlv(PP2_TYPE_CRC32C, bytes(4)) + tlvs
    body = address_block + tlvs
    if len(body) > 0xFFFF:
        raise ValueError("a PROXY v2 header carries at most 65535 bytes after its first 16")
    header = bytearray(PROXY_V2_SIGNATURE)
    header += struct.pack("!BBH", VERSION_2 | command, family_transport, len(body)) + body
    if checksum:
        at = _HEADER_START + len(address_block) + 3
        header[at : at + 4] = struct.pack("!I", crc32c(bytes(header)))
    return bytes(header)


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(address)
    except ValueError as exc:
        raise ValueError(f"{address!r} is not an IP address literal") from exc


def proxy_v2_proxy_header(
    source: tuple[str, int], destination: tuple[str, int], *, tlvs: bytes = b"", checksum: bool = False
) -> bytes:
    """The PROXY command for a TCP connection from ``source`` to ``destination`` (address, port)."""
    src, dst = _ip(source[0]), _ip(destination[0])
    if src.version != dst.version:
        # One family per header: write the IPv4 side as an IPv4-mapped IPv6 address.
        src, dst = (ipaddress.IPv6Address(f"::ffff:{a}") if a.version == 4 else a for a in (src, dst))
    family = FAMILY_INET if src.version == 4 else FAMILY_INET6
    for port in (source[1], destination[1]):
        if not 0 <= port <= 0xFFFF:
            raise ValueError(f"port {port} out of range")
    block = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1])
    return proxy_v2_header(COMMAND_PROXY, family | TRANSPORT_STREAM, block, tlvs, checksum=checksum)


def proxy_v2_local_header() -> bytes:
    """The LOCAL command as the specification recommends it: UNSPEC family, no address, length 0."""
    return proxy_v2_header(COMMAND_LOCAL, FAMILY_UNSPEC)


def nlb_health_check_header() -> bytes:
    """The header an NLB health check carries, rebuilt byte for byte from a capture.

    kubernetes/kubernetes issue #57250: LOCAL, family byte 0x11, length 84: no address block but a
    CRC32C TLV and a NOOP TLV of 74 zero bytes (100 bytes in all). Receivers skip a LOCAL header's
    body whatever its family, as the specification asks.
    """
    return proxy_v2_header(
        COMMAND_LOCAL, FAMILY_INET | TRANSPORT_STREAM, tlvs=tlv(PP2_TYPE_NOOP, bytes(74)), checksum=True
    )


@dataclass(frozen=True)
class ProxyV2Header:
    """A decoded v2 header (what a target received); ``length`` counts every byte of it."""

    command: Literal["LOCAL", "PROXY"]
    family_transport: int
    source: tuple[str, int] | None
    destination: tuple[str, int] | None
    tlvs: tuple[tuple[int, bytes], ...]
    length: int


def parse_proxy_v2(data: bytes) -> ProxyV2Header:
    """Decode the v2 header at the start of ``data``; ``ValueError`` when it is not one."""
    if len(data) < _HEADER_START or not data.startswith(PROXY_V2_SIGNATURE):
        raise ValueError("no PROXY v2 signature")
    version_command, family_transport, length = struct.unpack("!BBH", data[12:_HEADER_START])
    if version_command & 0xF0 != VERSION_2 or version_command & 0x0F not in (COMMAND_LOCAL, COMMAND_PROXY):
        raise ValueError(f"bad version/command byte {version_command:#04x}")
    if len(data) < _HEADER_START + length:
        raise ValueError("truncated PROXY v2 header")
    body = data[_HEADER_START : _HEADER_START + length]
    command: Literal["LOCAL", "PROXY"] = "PROXY" if version_command & 0x0F == COMMAND_PROXY else "LOCAL"
    source = destination = None
    rest = body
    sizes = {FAMILY_INET | TRANSPORT_STREAM: 4, FAMILY_INET6 | TRANSPORT_STREAM: 16}
    if command == "PROXY" and family_transport in sizes:
        size = sizes[family_transport]
        if len(body) < 2 * size + 4:
            raise ValueError("address block shorter than its family needs")
        src = ipaddress.ip_address(body[:size])
        dst = ipaddress.ip_address(body[size : 2 * size])
        src_port, dst_port = struct.unpack("!HH", body[2 * size : 2 * size + 4])
        source, destination = (str(src), src_port), (str(dst), dst_port)
        rest = body[2 * size + 4 :]
    tlvs: list[tuple[int, bytes]] = []
    offset = _HEADER_START + length - len(rest)  # where the TLVs start in ``data``
    checksum_at = None
    while offset < _HEADER_START + length:
        if _HEADER_START + length - offset < 3:
            raise ValueError("truncated TLV")
        kind, size = struct.unpack("!BH", data[offset : offset + 3])
        value = data[offset + 3 : offset + 3 + size]
        if len(value) != size or offset + 3 + size > _HEADER_START + length:
            raise ValueError("TLV longer than the header")
        if kind == PP2_TYPE_CRC32C and size == 4:
            checksum_at = offset + 3
        tlvs.append((kind, value))
        offset += 3 + size
    if checksum_at is not None:
        # Section 2.2.3: the checksum covers the whole header with its own field zeroed.
        whole = bytearray(data[: _HEADER_START + length])
        whole[checksum_at : checksum_at + 4] = bytes(4)
        if crc32c(bytes(whole)) != struct.unpack("!I", data[checksum_at : checksum_at + 4])[0]:
            raise ValueError("CRC32C mismatch")
    return ProxyV2Header(command, family_transport, source, destination, tuple(tlvs), _HEADER_START + length)


# ----- configuration ----------------------------------------------------------------------------


def require_loopback(address: str) -> str:
    """``address`` when it is a loopback IP literal (127.0.0.0/8 or ::1); ``ValueError`` otherwise."""
    if not _ip(address).is_loopback:
        raise ValueError(f"{address} is not a loopback address: the NLB stand-in stays on loopback")
    return address


@dataclass(frozen=True)
class HealthCheckSettings:
    """A TCP health check; defaults are AWS's for TCP target groups (CreateTargetGroup)."""

    interval: float = 30.0
    timeout: float = 10.0
    healthy_threshold: int = 5
    unhealthy_threshold: int = 2
    port: int | None = None  # None: the traffic port
    # The load balancer node's own address: checks never come from a client's address.
    source: str = LOOPBACK

    def __post_init__(self) -> None:
        require_loopback(self.source)
        if self.interval <= 0 or self.timeout <= 0:
            raise ValueError("interval and timeout must be positive")
        if self.healthy_threshold < 1 or self.unhealthy_threshold < 1:
            raise ValueError("thresholds count checks: at least 1")


@dataclass(frozen=True)
class TargetGroup:
    """One listener -> one target, with the attributes of an NLB target group that matter here."""

    target_port: int
    target_host: str = LOOPBACK
    proxy_protocol_v2: bool = False
    header_placement: HeaderPlacement = DEFAULT_HEADER_PLACEMENT
    target_type: TargetType = "instance"
    preserve_client_ip: bool | None = None  # None: AWS's default for target_type (TCP)
    client_address_override: str | None = None
    health_check: HealthCheckSettings | None = field(default_factory=HealthCheckSettings)
    listen_host: str = LOOPBACK
    listen_port: int = 0  # 0: the kernel picks one

    def __post_init__(self) -> None:
        if self.header_placement not in HEADER_PLACEMENTS:
            raise ValueError(f"header_placement must be one of {', '.join(HEADER_PLACEMENTS)}")
        if self.target_type not in ("instance", "ip"):
            raise ValueError("target_type must be instance or ip")
        require_loopback(self.target_host)
        require_loopback(self.listen_host)
        if self.health_check is not None and _ip(self.health_check.source).version != self.target_family:
            raise ValueError("the health checks' source and the target must be of one address family")
        if self.client_address_override is not None:
            # Data in the header only: any address, but it must be one.
            object.__setattr__(self, "client_address_override", str(_ip(self.client_address_override)))

    @property
    def target_family(self) -> int:
        return _ip(self.target_host).version

    def source_for(self, client_host: str) -> str:
        """The address the connection to the target comes from, for a client at ``client_host``.

        With preservation, the client's own; otherwise, or when the client's family is not the
        target's (AWS: an IPv6 client of an IPv4 target arrives from the load balancer's
        address), the load balancer's: the listener's, or loopback in the target's family.
        """
        if self.preserves_client_ip and _ip(client_host).version == self.target_family:
            return require_loopback(client_host)
        if _ip(self.listen_host).version == self.target_family:
            return self.listen_host
        return LOOPBACK if self.target_family == 4 else "::1"

    @property
    def preserves_client_ip(self) -> bool:
        """``preserve_client_ip.enabled``: AWS enables it for instance targets, not for IP targets."""
        if self.preserve_client_ip is not None:
            return self.preserve_client_ip
        return self.target_type == "instance"


# ----- health -----------------------------------------------------------------------------------


@dataclass
class TargetHealth:
    """The state machine of one target's health: consecutive results against the thresholds."""

    healthy_threshold: int
    unhealthy_threshold: int
    state: HealthState = "initial"
    checks: list[bool] = field(default_factory=list)
    _streak: int = 0

    def record(self, success: bool) -> HealthState:
        if self.checks and self.checks[-1] == success:
            self._streak += 1
        else:
            self._streak = 1
        self.checks.append(success)
        if success and self._streak >= self.healthy_threshold:
            self.state = "healthy"
        elif not success and self._streak >= self.unhealthy_threshold:
            self.state = "unhealthy"
        return self.state


@dataclass
class ListenerStats:
    """What one listener did, for tests to assert on (written by the proxy's thread)."""

    connections: int = 0
    headers_sent: list[bytes] = field(default_factory=list)
    target_bytes_dropped: int = 0
    dropped_from_target: bytes = b""  # the first 4 KiB of it, for the record
    target_closed_before_payload: int = 0
    clients_reset: int = 0


# ----- the proxy --------------------------------------------------------------------------------

_BUFFER = 65536
_CONNECT_TIMEOUT = 10.0
_KEEP_DROPPED = 4096


class RunningTargetGroup:
    """A started listener: its port, health and statistics."""

    def __init__(self, group: TargetGroup) -> None:
        self.group = group
        self.port = group.listen_port
        settings = group.health_check or HealthCheckSettings()
        self.health = TargetHealth(settings.healthy_threshold, settings.unhealthy_threshold)
        self.stats = ListenerStats()
        self.server: asyncio.Server | None = None

    @property
    def health_state(self) -> HealthState:
        return self.health.state

    def wait_for_health(self, state: HealthState, timeout: float = 30.0) -> HealthState:
        """Wait until the target's health is ``state``; ``TimeoutError`` with the history if not."""
        deadline = time.monotonic() + timeout
        while self.health.state != state:
            if time.monotonic() > deadline:
                raise TimeoutError(f"target health is {self.health.state}, not {state}: {self.health.checks}")
            time.sleep(0.05)
        return state


class LocalNlb:
    """The stand-in: one listener per target group, on an event loop in its own thread.

    ``start()`` binds every listener and starts the health checks; ``stop()`` closes the
    listeners, every client and target connection, and the loop. Also a context manager.
    """

    def __init__(self, *groups: TargetGroup) -> None:
        if not groups:
            raise ValueError("an NLB stand-in needs at least one target group")
        self.groups = [RunningTargetGroup(group) for group in groups]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        """The listener's port (with one target group)."""
        if len(self.groups) != 1:
            raise ValueError("several target groups: use groups[i].port")
        return self.groups[0].port

    @property
    def group(self) -> RunningTargetGroup:
        if len(self.groups) != 1:
            raise ValueError("several target groups: use groups[i]")
        return self.groups[0]

    # ----- lifecycle ------------------------------------------------------------------------
    def start(self) -> LocalNlb:
        if self._loop is not None:
            return self
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="proxymx-nlb", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            self._run(self._start())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Close every listener and connection and end the loop; idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            self._run(self._stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self._loop = self._thread = None

    def _run(self, coroutine: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    async def _start(self) -> None:
        for running in self.groups:
            group = running.group

            async def serve(
                reader: asyncio.StreamReader,
                writer: asyncio.StreamWriter,
                running: RunningTargetGroup = running,
            ) -> None:
                # stop() cancels the sessions; asyncio's streams would log a cancelled callback.
                with contextlib.suppress(asyncio.CancelledError):
                    await self._serve(running, reader, writer)

            # A restart binds the port the first start got, so clients keep their address.
            running.server = await asyncio.start_server(serve, group.listen_host, running.port)
            running.port = int(running.server.sockets[0].getsockname()[1])
            if group.health_check is not None:
                self._spawn(self._health_checks(running, group.health_check))

    async def _stop(self) -> None:
        for running in self.groups:
            if running.server is not None:
                running.server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for running in self.groups:
            if running.server is not None:
                await running.server.wait_closed()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _track(self, writer: asyncio.StreamWriter) -> asyncio.StreamWriter:
        self._writers.add(writer)
        return writer

    def _close(self, *writers: asyncio.StreamWriter, reset: bool = False) -> None:
        for writer in writers:
            self._writers.discard(writer)
            if reset:
                # SO_LINGER 0: the close sends a RST, as a TCP peer does for a dead connection.
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
            else:
                writer.close()

    # ----- one client connection ------------------------------------------------------------
    async def _serve(
        self, running: RunningTargetGroup, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._track(client)
        group = running.group
        running.stats.connections += 1
        peer_host, peer_port = client.get_extra_info("peername")[:2]
        listener_host, listener_port = client.get_extra_info("sockname")[:2]
        source = group.source_for(peer_host)
        try:
            target_reader, target = await asyncio.wait_for(
                asyncio.open_connection(
                    require_loopback(group.target_host), group.target_port, local_addr=(source, 0)
                ),
                _CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError):
            running.stats.clients_reset += 1
            self._close(client, reset=True)
            return
        self._track(target)
        header = b""
        if group.proxy_protocol_v2:
            header = proxy_v2_proxy_header(
                (group.client_address_override or peer_host, peer_port), (listener_host, listener_port)
            )
        first = b""
        if header and group.header_placement == "on_first_ack_with_payload":
            held = asyncio.ensure_future(self._drop_target_output(running, target_reader))
            try:
                first = await client_reader.read(_BUFFER)
            except OSError:
                first = b""
            target_gone = held.done()
            held.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await held
            if not first:
                # The client left without a byte: the target never got a header either.
                self._close(client, target)
                return
            if target_gone:
                running.stats.clients_reset += 1
                self._close(client, target, reset=True)
                return
        if header:
            running.stats.headers_sent.append(header)
        try:
            target.write(header + first)
            await target.drain()
        except OSError:
            self._close(client, target, reset=True)
            return
        await asyncio.gather(
            self._pipe(client_reader, target, client), self._pipe(target_reader, client, target)
        )
        self._close(client, target)

    async def _drop_target_output(self, running: RunningTargetGroup, reader: asyncio.StreamReader) -> None:
        """Read and drop what the target sends before the client's first payload (TiDB's note)."""
        stats = running.stats
        while True:
            try:
                data = await reader.read(_BUFFER)
            except OSError:
                data = b""
            if not data:
                stats.target_closed_before_payload += 1
                return
            stats.target_bytes_dropped += len(data)
            stats.dropped_from_target = (stats.dropped_from_target + data)[:_KEEP_DROPPED]

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, source: asyncio.StreamWriter
    ) -> None:
        """Copy until EOF, then pass the half-close on; a reset on either side resets both."""
        try:
            while data := await reader.read(_BUFFER):
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except OSError:
            self._close(writer, source, reset=True)

    # ----- health checks --------------------------------------------------------------------
    async def _health_checks(self, running: RunningTargetGroup, settings: HealthCheckSettings) -> None:
        while True:
            running.health.record(await self._health_check(running.group, settings))
            await asyncio.sleep(settings.interval)

    async def _health_check(self, group: TargetGroup, settings: HealthCheckSettings) -> bool:
        """One TCP check from the node's address: success is the connection established."""
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    require_loopback(group.target_host),
                    settings.port or group.target_port,
                    local_addr=(settings.source, 0),
                ),
                settings.timeout,
            )
        except (OSError, TimeoutError):
            return False
        self._track(writer)
        try:
            if group.proxy_protocol_v2 and group.header_placement == "on_first_ack":
                writer.write(nlb_health_check_header())
                await writer.drain()
        except OSError:
            pass  # established is what counts; the target may close first
        finally:
            self._close(writer)
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        return True

    # ----- context manager --------------------------------------------------------------------
    def __enter__(self) -> LocalNlb:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
