"""A private Postfix on loopback, for the data-plane tests, the demo and the benchmark.

Each :class:`LocalPostfix` is a complete, separate Postfix instance: its own configuration
directory (``MAIL_CONFIG``), queue, data directory (owned by ``postfix``), mail log file,
``myhostname`` and ``postscreen_cache_map``, listening on a high loopback port, relaying
everything to an :class:`SmtpSink` (Postfix's ``smtp-sink``) on loopback. It starts from
Debian's own default ``main.cf``/``master.cf`` (the package's files), so "a fresh Debian
configuration" means exactly that, with only what a machine without an init system, DNS or
syslog needs on top (see DESIGN.md, "Local real parts"). Postfix runs as root, as in CI.

Nothing here is imported by a Lambda handler.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

LOOPBACK = "127.0.0.1"
# Debian's package files: main.cf.debian is what postinst starts main.cf from, master.cf.proto
# is the master.cf the package installs.
DEBIAN_MAIN_CF = (Path("/usr/share/postfix/main.cf.debian"), Path("/etc/postfix/main.cf.proto"))
DEBIAN_MASTER_CF = (Path("/etc/postfix/master.cf.proto"), Path("/usr/share/postfix/master.cf.dist"))
DATA_PLANE_TOOLS = ("postconf", "postfix", "smtp-source", "smtp-sink", "swaks", "haproxy")
INSTALL_HINT = "sudo apt-get install postfix haproxy swaks"


def missing_tools(tools: tuple[str, ...] = DATA_PLANE_TOOLS) -> list[str]:
    """The data-plane tools not found on PATH (Postfix lives in /usr/sbin, searched too)."""
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    return [tool for tool in tools if shutil.which(tool, path=path) is None]


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port free on ``host`` right now (the kernel picks it from the ephemeral range)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def is_listening(host: str, port: int) -> bool:
    """True when a socket listens on host:port, found without connecting to it.

    Connecting would show up in the mail log as a client (and a proxy-expecting postscreen
    would wait for a header); binding the address instead fails with EADDRINUSE only while
    a listener holds it (SO_REUSEADDR ignores sockets merely in TIME_WAIT).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Wait until something listens on host:port (see :func:`is_listening`)."""
    deadline = time.monotonic() + timeout
    while not is_listening(host, port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")
        time.sleep(0.05)


def _make_reachable(root: Path) -> None:
    """Let the postfix user reach ``root``: Postfix daemons drop to it and chdir into the queue.

    ``tempfile.mkdtemp()`` and pytest's ``tmp_path`` create 0700 directories; ``root`` gets
    0755, and any 0700 ancestor inside the temporary directory gets search permission (x, not
    read) so that the daemons can traverse it. Nothing outside the temporary directory is touched.
    """
    root.chmod(0o755)
    temp = Path(tempfile.gettempdir()).resolve()
    for ancestor in root.resolve().parents:
        if ancestor == temp or temp not in ancestor.parents:
            break
        mode = ancestor.stat().st_mode
        if mode & 0o001 == 0:
            ancestor.chmod((mode & 0o7777) | 0o011)


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """Terminate a helper process we started (SIGTERM, then SIGKILL after 5 s); idempotent."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _first_existing(candidates: tuple[Path, ...]) -> Path:
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"none of {', '.join(map(str, candidates))} exists: is Postfix installed?")


@dataclass
class SmtpSink:
    """Postfix's ``smtp-sink`` on loopback: the final destination; one dump file per message."""

    root: Path
    port: int = 0
    host: str = LOOPBACK
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def dump_dir(self) -> Path:
        return self.root / "sink"

    def start(self) -> SmtpSink:
        self.dump_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.dump_dir, user="nobody")
        self.port = self.port or free_port(self.host)
        # -u nobody: smtp-sink refuses to keep root privileges. -d: one file per transaction
        # (template + a random suffix), so counting files counts messages exactly.
        self.process = subprocess.Popen(
            ["smtp-sink", "-u", "nobody", "-d", f"{self.dump_dir}/msg.", f"{self.host}:{self.port}", "256"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.host, self.port)
        return self

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def messages(self) -> list[Path]:
        return sorted(self.dump_dir.glob("msg.*"))

    def count(self) -> int:
        return len(self.messages())

    def wait_for_count(self, expected: int, timeout: float = 30.0) -> int:
        """Wait until at least ``expected`` messages arrived (or the timeout); return the count."""
        deadline = time.monotonic() + timeout
        while (count := self.count()) < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        return count


@dataclass
class LocalPostfix:
    """A private Postfix instance under ``root``, listening on ``127.0.0.1:smtp_port``.

    The SMTP service is named ``127.0.0.1:<smtp_port>`` in master.cf: the document's script
    treats it as the MX service when the caller passes ``SmtpPorts=<smtp_port>``, exactly as
    it treats ``smtp`` (25) in production. ``extra_services`` adds master.cf entries
    (``{"name/type": "entry"}``), e.g. a submission service or the benchmark's direct port.
    """

    root: Path
    smtp_port: int = 0
    host: str = LOOPBACK
    hostname: str = "mx.proxymx.test"
    extra_services: dict[str, str] = field(default_factory=dict)
    sink: SmtpSink | None = None

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.smtp_port = self.smtp_port or free_port(self.host)

    # ----- layout -----------------------------------------------------------------------
    @property
    def config_dir(self) -> Path:
        return self.root / "etc"

    @property
    def queue_dir(self) -> Path:
        return self.root / "spool"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def maillog(self) -> Path:
        return self.root / "maillog"

    @property
    def smtp_service(self) -> str:
        return f"{self.host}:{self.smtp_port}"

    @property
    def env(self) -> dict[str, str]:
        return {"MAIL_CONFIG": str(self.config_dir)}

    # ----- creation ---------------------------------------------------------------------
    def create(self) -> LocalPostfix:
        """Write a fresh Debian configuration adapted to loopback (and start the sink)."""
        self.root.mkdir(parents=True, exist_ok=True)
        _make_reachable(self.root)
        if self.sink is None:
            self.sink = SmtpSink(self.root).start()
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.queue_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.data_dir, user="postfix")
        shutil.copyfile(_first_existing(DEBIAN_MAIN_CF), self.config_dir / "main.cf")
        shutil.copyfile(_first_existing(DEBIAN_MASTER_CF), self.config_dir / "master.cf")
        settings = {
            "myhostname": self.hostname,
            "mydomain": "proxymx.test",
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.data_dir),
            # No syslog on a bare machine: postlogd writes this file. Postfix only accepts
            # maillog_file under one of maillog_file_prefixes.
            "maillog_file": str(self.maillog),
            "maillog_file_prefixes": f"/var, /dev/stdout, {self.root}",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            # Everything relays to the sink; nothing is delivered locally.
            "mydestination": "",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "relayhost": f"[{LOOPBACK}]:{self.sink.port}",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            # No DNS on loopback: no reverse lookups, no MX lookups.
            "smtpd_peername_lookup": "no",
            "smtp_dns_support_level": "disabled",
            "smtp_host_lookup": "native",
            "postscreen_cache_map": f"btree:{self.data_dir}/postscreen_cache",
            # The sink is always up: retry soon if it was not.
            "minimal_backoff_time": "5s",
            "maximal_backoff_time": "10s",
            "queue_run_delay": "5s",
            # master throttles a daemon that crashes at startup for this long, and a reload
            # does not clear it (60s by default): keep the tests' broken-configuration case short.
            "service_throttle_time": "5s",
        }
        self.postconf("-e", *(f"{key}={value}" for key, value in settings.items()))
        # Nothing copies files into a chroot here: run every service unchrooted.
        self.postconf("-F", "*/*/chroot=n")
        # The MX service on a high loopback port, shaped exactly like Debian's smtp line.
        self.postconf("-M", f"smtp/inet={self.smtp_service} inet n - n - - smtpd")
        for name, entry in self.extra_services.items():
            self.postconf("-M", f"{name}={entry}")
        return self

    # ----- control ------------------------------------------------------------------------
    def postconf(self, *args: str) -> str:
        done = subprocess.run(
            ["postconf", *args], env=self._run_env(), capture_output=True, text=True, check=True, timeout=30
        )
        return done.stdout

    def postfix(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["postfix", *args], env=self._run_env(), capture_output=True, text=True, check=check, timeout=60
        )

    def is_running(self) -> bool:
        return self.postfix("status", check=False).returncode == 0

    def start(self) -> LocalPostfix:
        if not self.config_dir.is_dir():
            self.create()
        self.postfix("start")
        wait_for_port(self.host, self.smtp_port)
        return self

    def reload(self) -> None:
        self.postfix("reload")

    def stop(self) -> None:
        """Stop Postfix and the sink. Idempotent; safe in finalizers even when start failed.

        ``postfix status`` and ``postfix stop`` parse main.cf first: with a configuration that does
        not parse (a test that broke it on purpose, a script that failed half-way) both fail and
        the master used to be left running (issue 9, finding 9). The master's own pid file and its
        working directory (master chdirs to queue_directory) find it whatever main.cf says."""
        if self.config_dir.is_dir() and (self._master_pid() is not None or self.is_running()):
            result = self.postfix("stop", check=False)
            if result.returncode != 0:
                self._kill_master()
            # postfix stop returns once master got the signal; wait for it to be gone.
            deadline = time.monotonic() + 10
            while self._master_pid() is not None and time.monotonic() < deadline:
                time.sleep(0.1)
            if self._master_pid() is not None:
                self._kill_master()
        if self.sink is not None:
            self.sink.stop()

    def master_pid(self) -> int | None:
        """The pid of this instance's running master (the bench pins it to a CPU), or None."""
        return self._master_pid()

    def _master_pid(self) -> int | None:
        """The pid of THIS instance's running master (pid file, and its cwd is our queue), or None."""
        pid_file = self.queue_dir / "pid" / "master.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
            cwd = Path(f"/proc/{pid}/cwd").readlink()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError, IndexError):
            return None
        if state == "Z" or cwd.resolve() != self.queue_dir.resolve():
            return None
        return pid

    def _kill_master(self) -> None:
        pid = self._master_pid()
        if pid is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def _run_env(self) -> dict[str, str]:
        import os

        env = dict(os.environ)
        env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        env.update(self.env)
        return env

    # ----- the mail log -------------------------------------------------------------------
    def log_text(self) -> str:
        try:
            return self.maillog.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_offset(self) -> int:
        return len(self.log_text())

    def wait_for_log(self, pattern: str, *, since: int = 0, timeout: float = 15.0) -> re.Match[str]:
        """Wait until the log (from character ``since``) matches ``pattern``; return the match."""
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.log_text(), since)
            if match:
                return match
            if time.monotonic() > deadline:
                tail = self.log_text()[since:][-3000:]
                raise TimeoutError(f"no log line matching {pattern!r} after {timeout}s; log tail:\n{tail}")
            time.sleep(0.05)

    def queued_messages(self) -> int:
        """Messages still in the queue (read from the queue directories: postqueue refuses a
        non-default configuration directory unless the default main.cf lists it)."""
        queues = ("maildrop", "incoming", "active", "deferred", "hold")
        return sum(1 for queue in queues for path in (self.queue_dir / queue).rglob("*") if path.is_file())

    # ----- context manager ----------------------------------------------------------------
    def __enter__(self) -> LocalPostfix:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
