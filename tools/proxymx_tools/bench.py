"""``make bench``: what the PROXY-protocol hop costs the data plane (and, first, what one Reconcile
sweep costs in AWS calls and simulated time: proxymx_tools.sweepcost).

One private Postfix, configured by the SSM document's script (the exact text from
template.yaml). Four paths into the same postscreen -> smtpd pipeline:

- ``off``: HAProxy in plain ``mode tcp`` (a load balancer WITHOUT the PROXY protocol) -> a
  second postscreen service on its own loopback port that expects no header;
- ``v1``: HAProxy ``send-proxy`` (a Classic ELB with the policy) -> the configured port;
- ``v2``: HAProxy ``send-proxy-v2`` (an NLB with ``proxy_protocol_v2.enabled``) -> the same;
- ``direct``: no proxy, straight to the header-less postscreen (for reference only).

The figure to read is header ON / header OFF through the same proxy (``v1``/``off``,
``v2``/``off``; target >= 0.97): in AWS the load balancer is there with or without the PROXY
protocol, so the hop is not what the protocol costs. The pairing is fair because the two sides
differ only in the header: the same HAProxy build and configuration (one process per path,
``send-proxy[-v2]`` the only different word), the same Postfix instance, the same master.cf
postscreen -> smtpd pipeline and main.cf policy (the header-less postscreen is the configured
service's twin, with ``postscreen_upstream_proxy_protocol`` empty and its own cache file), and
the same client address as Postfix sees it (smtp-source and HAProxy are both on 127.0.0.1, so
mynetworks and postscreen decide alike on both sides). ``direct`` against ``off`` shows what
the extra hop costs on this machine (HAProxy shares the cores with Postfix and the client).

Every round sends the same ``smtp-source`` load down each path. Each header path is measured
in an adjacent PAIR with the header-off path (A B, then B A in the next round: ABBA, so drift
and the order's own effect cancel), and its ratio is that pair's on / off; ``direct`` runs once
per round, as a reference against the round's first ``off``. The queue is drained to the sink
before each measurement so every run starts from the same state. The figure is messages
accepted per second (the client's wall time for the whole load); the table shows each path's
median rate and, for the ratios, the median over the pairs with the middle half of them
(25th-75th percentile) as the spread: the machine's noise, said beside the figure.

Beside the rate, a second figure that the neighbours do not move: the CPU time the two parts
that handle the header spend per message, the proxy (every thread of its HAProxy process) and
postscreen (the one that reads the header, or its header-less twin), from the kernel's
per-thread run time (``/proc/<pid>/task/<tid>/schedstat``, nanoseconds) before and after each
load. The rest of the pipeline (smtpd, cleanup, qmgr, the relay to the sink) is the same on
both sides: the header never reaches it.

Third, what the header costs the INSTANCE: the CPU time of the whole Postfix (the master and
every process it forks, the ones that exit during the load included: postscreen, smtpd, cleanup,
qmgr, the relay to the sink), read from a ``cpuacct`` cgroup (v1) or ``cpu.stat`` (v2) the bench
puts the running Postfix in. In AWS the proxy's work is the load balancer's, off the instance, so
an instance that is CPU-bound takes ``1 / (CPU per message)`` messages a second: the ratio of
header-off to header-on CPU per message is the instance's capacity with the header, as a share
of its capacity without (``capacity x off``). It is measured in the same ABBA pairs, and it is
what the neighbours of a shared machine move least: they slow a load down, but do not add CPU
time to Postfix's processes. Without a writable cgroup hierarchy the column says n/a.

``--pin`` (Linux): the Postfix master (and the daemons it forks), the sink on CPU 0; the
proxies (every thread) and the client on CPU 1, so that the proxy never waits behind
Postfix for the same core. It cannot keep the neighbours of a shared machine away.

Bounded in time: the rounds stop early (and say so) when the budget runs out.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from proxymx_tools.document import run_document
from proxymx_tools.haproxy import LocalHaproxy
from proxymx_tools.postfix import INSTALL_HINT, LOOPBACK, LocalPostfix, free_port, missing_tools

PATHS = ("off", "v1", "v2", "direct")
HEADER_TARGET = 0.97  # header on / header off through the same proxy (issue 11)


@dataclass
class BenchConfig:
    # More, shorter rounds than a single long load: the on/off difference is a few percent and
    # the shared machine's round-to-round noise is +-8 %; medians over 15 pairs tame it.
    rounds: int = 15
    messages: int = 400
    sessions: int = 8
    size: int = 4096
    budget_seconds: float = 300.0
    pin: bool = False


@dataclass
class BenchResult:
    config: BenchConfig
    postfix_version: str
    rates: dict[str, list[float]] = field(default_factory=lambda: {path: [] for path in PATHS})
    # Header path -> (on, off) rates of each adjacent pair; "direct" -> (direct, the round's off).
    pairs: dict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: {path: [] for path in PATHS if path != "off"}
    )
    # Path -> CPU seconds the proxy + postscreen spent per message, one figure per load.
    cpu: dict[str, list[float]] = field(default_factory=lambda: {path: [] for path in PATHS})
    # Path -> the postscreen's share of it (the rest is the proxy).
    postscreen_cpu: dict[str, list[float]] = field(default_factory=lambda: {path: [] for path in PATHS})
    # Header path -> (on, off) CPU per message of each adjacent pair.
    cpu_pairs: dict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: {path: [] for path in PATHS if path != "off"}
    )
    # Path -> CPU seconds the whole Postfix spent per message (empty: no cgroup to read it).
    instance_cpu: dict[str, list[float]] = field(default_factory=lambda: {path: [] for path in PATHS})
    # Header path -> (on, off) of the whole Postfix's CPU per message, each adjacent pair.
    instance_pairs: dict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: {path: [] for path in PATHS if path != "off"}
    )
    stopped_early: bool = False

    def cpu_ratio(self, path: str) -> float:
        """The median over the pairs of header on / off CPU per message (> 1: the header costs)."""
        if path == "off" or not self.cpu_pairs[path]:
            return 1.0
        return statistics.median(on / off for on, off in self.cpu_pairs[path])

    def median(self, path: str) -> float:
        return statistics.median(self.rates[path])

    def capacity(self, path: str) -> float | None:
        """The instance's capacity with this path as a share of header off: the median over the
        pairs of off / on CPU per message of the whole Postfix (None: not measured)."""
        if path == "off":
            return 1.0 if self.instance_cpu["off"] else None
        pairs = [(on, off) for on, off in self.instance_pairs[path] if on > 0]
        return statistics.median(off / on for on, off in pairs) if pairs else None

    def capacity_spread(self, path: str) -> tuple[float, float] | None:
        ratios = [off / on for on, off in self.instance_pairs.get(path, []) if on > 0]
        if len(ratios) < 2:
            return None
        quartiles = statistics.quantiles(ratios, n=4, method="inclusive")
        return quartiles[0], quartiles[2]

    def instance_median(self, path: str) -> float | None:
        return statistics.median(self.instance_cpu[path]) if self.instance_cpu[path] else None

    def cpu_median(self, path: str) -> float:
        return statistics.median(self.cpu[path]) if self.cpu[path] else 0.0

    def postscreen_median(self, path: str) -> float:
        return statistics.median(self.postscreen_cpu[path]) if self.postscreen_cpu[path] else 0.0

    def ratios(self, path: str) -> list[float]:
        return [on / off for on, off in self.pairs[path]]

    def ratio(self, path: str) -> float:
        """The median over the pairs of path / header off, each pair measured back to back: a
        moment the neighbours slowed down moves both sides and cancels out."""
        return statistics.median(self.ratios(path)) if path != "off" else 1.0

    def spread(self, path: str) -> tuple[float, float]:
        """The 25th and 75th percentiles of the pairs' ratios (the middle half)."""
        ratios = self.ratios(path) if path != "off" else [1.0]
        if len(ratios) < 2:
            return ratios[0], ratios[0]
        quartiles = statistics.quantiles(ratios, n=4, method="inclusive")
        return quartiles[0], quartiles[2]

    def table(self) -> str:
        cfg = self.config
        pairs = len(self.pairs["v1"])
        lines = [
            f"proxymx bench: Postfix {self.postfix_version}, smtp-source -s {cfg.sessions} -m {cfg.messages} "
            f"-l {cfg.size}, {pairs} round(s) of adjacent on/off pairs (ABBA)"
            + (", pinned: Postfix+sink CPU 0, proxies+client CPU 1" if cfg.pin else ", not pinned")
            + (" (stopped early: time budget)" if self.stopped_early else ""),
            "",
            f"{'path':<38} {'msg/s (median)':>15} {'min':>7} {'max':>7} "
            f"{'x off (median)':>15} {'[spread]':>13} {'proxy+postscreen us/msg':>23} {'x off':>6} "
            f"{'of which postscreen':>19}",
            " ".join("-" * width for width in (38, 15, 7, 7, 15, 13, 23, 6, 19)),
        ]
        labels = {
            "off": "proxy, header off (plain mode tcp)",
            "v1": "proxy, header v1 (Classic send-proxy)",
            "v2": "proxy, header v2 (NLB send-proxy-v2)",
            "direct": "direct, no proxy (reference)",
        }
        for path in PATHS:
            rates = self.rates[path]
            low, high = self.spread(path)
            lines.append(
                f"{labels[path]:<38} {self.median(path):>15.1f} {min(rates):>7.1f} {max(rates):>7.1f} "
                f"{self.ratio(path):>15.3f} {f'[{low:.3f}-{high:.3f}]':>13} "
                f"{self.cpu_median(path) * 1e6:>23.0f} {self.cpu_ratio(path):>6.2f} "
                f"{self.postscreen_median(path) * 1e6:>19.0f}"
            )
        verdicts = [
            f"{path} {self.ratio(path):.3f} {'ok' if self.ratio(path) >= HEADER_TARGET else 'BELOW'}"
            for path in ("v1", "v2")
        ]
        lines += [
            "",
            f"header on / header off, same proxy, median of {pairs} pairs (target >= {HEADER_TARGET}): "
            + ", ".join(verdicts),
            "CPU of the parts that handle the header, header on / off (median of the pairs): "
            + ", ".join(f"{path} {self.cpu_ratio(path):.2f}" for path in ("v1", "v2")),
        ]
        lines += ["", *self.instance_table()]
        return "\n".join(lines)

    def instance_table(self) -> list[str]:
        """The instance's side: the whole Postfix's CPU per message, and its capacity x off."""
        if self.capacity("off") is None:
            return ["instance capacity: n/a (no writable cgroup hierarchy to read Postfix's CPU from)"]
        lines = [
            f"{'what the instance pays (all of Postfix)':<38} {'CPU us/msg (median)':>20} "
            f"{'capacity x off (median)':>24} {'[spread]':>13}",
            " ".join("-" * width for width in (38, 20, 24, 13)),
        ]
        for path in ("off", "v1", "v2"):
            median, capacity = self.instance_median(path), self.capacity(path)
            spread = self.capacity_spread(path)
            shown = f"[{spread[0]:.3f}-{spread[1]:.3f}]" if spread else ""
            lines.append(f"{path:<38} {(median or 0) * 1e6:>20.0f} {capacity or 0:>24.3f} {shown:>13}")
        verdicts = []
        for path in ("v1", "v2"):
            capacity = self.capacity(path) or 0.0
            verdicts.append(f"{path} {capacity:.3f} {'ok' if capacity >= HEADER_TARGET else 'BELOW'}")
        lines += [
            "",
            "instance capacity with the header / without (off / on CPU per message of all of Postfix, "
            f"median of the pairs; target >= {HEADER_TARGET}): " + ", ".join(verdicts),
            "the same from its parts: 1 - (postscreen's extra CPU per message with the header) / (all of "
            "Postfix's CPU per message): "
            + ", ".join(f"{path} {self.capacity_from_postscreen(path):.3f}" for path in ("v1", "v2"))
            + " (postscreen is the only Postfix process the header reaches)",
        ]
        return lines

    def capacity_from_postscreen(self, path: str) -> float:
        """The instance's capacity with the header, from its one on-instance cost: the CPU the
        postscreen that reads the header spends per message beyond its header-less twin (medians),
        over all of Postfix's CPU per message without the header. Much less noisy than the paired
        end-to-end figure: both medians are over every load of the run."""
        whole = self.instance_median("off") or 0.0
        if whole <= 0:
            return 0.0
        extra = self.postscreen_median(path) - self.postscreen_median("off")
        return 1.0 - max(0.0, extra) / whole


CGROUP_ROOTS = (Path("/sys/fs/cgroup/cpuacct"), Path("/sys/fs/cgroup"))


class CpuGroup:
    """A cgroup holding the running Postfix (its master and every descendant; what the master
    forks later is born in it), read for the CPU time of all of them, the exited ones included.

    cgroup v1 ``cpuacct.usage`` (ns) or cgroup v2 ``cpu.stat`` ``usage_usec``; created under the
    hierarchy's root, given back (processes moved to the root, directory removed) on exit.
    """

    def __init__(self, path: Path, root: Path) -> None:
        self.path = path
        self.root = root

    @classmethod
    @contextmanager
    def around(cls, master: int | None) -> Iterator[CpuGroup | None]:
        group = cls.create(master) if master is not None else None
        try:
            yield group
        finally:
            if group is not None:
                group.close()

    @classmethod
    def create(cls, master: int) -> CpuGroup | None:
        for root in CGROUP_ROOTS:
            v1 = (root / "cpuacct.usage").is_file()
            v2 = (root / "cgroup.controllers").is_file()
            if not (v1 or v2):
                continue
            path = root / f"proxymx-bench-{os.getpid()}"
            try:
                path.mkdir(exist_ok=True)
                group = cls(path, root)
                for pid in [master, *descendants(master)]:
                    (path / "cgroup.procs").write_text(f"{pid}\n")
                group.seconds()
            except OSError:
                with contextlib.suppress(OSError):
                    path.rmdir()
                continue
            return group
        return None

    def seconds(self) -> float:
        usage = self.path / "cpuacct.usage"
        if usage.is_file():
            return int(usage.read_text()) / 1e9
        for line in (self.path / "cpu.stat").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "usage_usec":
                return int(value) / 1e6
        raise OSError(f"no usage_usec in {self.path / 'cpu.stat'}")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            for pid in (self.path / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (self.root / "cgroup.procs").write_text(f"{pid}\n")
            self.path.rmdir()


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def run_time(pid: int) -> float:
    """Seconds on CPU of every thread of ``pid`` so far (0 when it is gone)."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return total / 1e9


def postscreens(master: int) -> list[int]:
    """The postscreen processes our master runs (they are spawned on the first connection and
    may be replaced: looked up at each load)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == master and (entry / "comm").read_text().strip() == "postscreen":
                found.append(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return found


def pin_process(pid: int, cpu: int) -> None:
    """Every thread of ``pid`` on ``cpu`` (children it forks later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), {cpu})


def send_load(port: int, config: BenchConfig) -> float:
    """One ``smtp-source`` load to 127.0.0.1:port; messages per second (wall time)."""
    command = [
        "smtp-source",
        "-s", str(config.sessions),
        "-m", str(config.messages),
        "-l", str(config.size),
        "-f", "bench@example.net",
        "-t", "sink@example.com",
        "-M", "bench.proxymx.test",
        f"{LOOPBACK}:{port}",
    ]  # fmt: skip
    started = time.perf_counter()
    pin = (lambda: os.sched_setaffinity(0, {1})) if config.pin else None
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, preexec_fn=pin)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"smtp-source failed on port {port}: {done.stdout}{done.stderr}")
    return config.messages / elapsed


def wait_until_drained(postfix: LocalPostfix, expected: int, timeout: float = 60) -> None:
    """Wait until the sink has every message sent so far (so the next run starts idle)."""
    assert postfix.sink is not None
    if postfix.sink.wait_for_count(expected, timeout=timeout) < expected:
        raise RuntimeError(f"the sink has {postfix.sink.count()} of {expected} messages after {timeout}s")
    deadline = time.monotonic() + timeout
    while postfix.queued_messages() and time.monotonic() < deadline:
        time.sleep(0.05)


@contextmanager
def bench_rig(pin: bool = False) -> Iterator[tuple[LocalPostfix, dict[str, int], dict[str, int]]]:
    """The configured Postfix, the port of each path and the pid of each path's proxy; everything
    stopped on exit."""
    root = Path(tempfile.mkdtemp(prefix="proxymx-bench-"))
    root.chmod(0o755)
    direct_port = free_port()
    direct = f"{LOOPBACK}:{direct_port}"
    postfix = LocalPostfix(
        root,
        extra_services={
            # Same postscreen -> smtpd pipeline as the SMTP port, minus the header; its own
            # cache (two postscreens must not share a btree file).
            f"{direct}/inet": f"{direct} inet n - n - 1 postscreen -o postscreen_upstream_proxy_protocol= "
            f"-o postscreen_cache_map=btree:{root}/data/postscreen_direct_cache",
        },
    )
    proxies: list[LocalHaproxy] = []
    try:
        postfix.start()
        run = run_document({"SmtpPorts": str(postfix.smtp_port)}, mail_config=postfix.config_dir)
        if run.exit_code != 0 or run.summary is None or not run.summary.proves_configuration:
            raise RuntimeError(f"the document did not configure Postfix:\n{run.stdout}{run.stderr}")
        for mode in ("v1", "v2"):
            proxies.append(LocalHaproxy(root / "haproxy", postfix.smtp_port, mode).start())
        # Header off: the same HAProxy configuration minus send-proxy, to the header-less twin.
        proxies.append(LocalHaproxy(root / "haproxy", direct_port, "off").start())
        if pin:
            master = postfix.master_pid()
            if master is None or postfix.sink is None or postfix.sink.process is None:
                raise RuntimeError("bench --pin: the Postfix master or the sink is not running")
            pin_process(master, 0)
            pin_process(postfix.sink.process.pid, 0)
            for proxy in proxies:
                assert proxy.process is not None
                pin_process(proxy.process.pid, 1)
        pids = {
            path: proxy.process.pid
            for path, proxy in zip(("v1", "v2", "off"), proxies, strict=True)
            if proxy.process
        }
        yield (
            postfix,
            {"direct": direct_port, "v1": proxies[0].port, "v2": proxies[1].port, "off": proxies[2].port},
            pids,
        )
    finally:
        for proxy in proxies:
            proxy.stop()
        postfix.stop()
        shutil.rmtree(root, ignore_errors=True)


def run_bench(config: BenchConfig) -> BenchResult:
    started = time.monotonic()
    with (
        bench_rig(config.pin) as (postfix, ports, proxy_pids),
        CpuGroup.around(postfix.master_pid()) as group,
    ):
        version = postfix.postconf("-h", "mail_version").strip()
        result = BenchResult(config, version)
        sent = 0

        master = postfix.master_pid()

        def front_cpu(path: str) -> dict[int, float]:
            watched = postscreens(master) if master is not None else []
            if path in proxy_pids:
                watched.append(proxy_pids[path])
            return {pid: run_time(pid) for pid in watched}

        def delta(before: dict[int, float], after: dict[int, float], only: set[int] | None = None) -> float:
            return sum(
                max(0.0, seconds - before.get(pid, 0.0))
                for pid, seconds in after.items()
                if only is None or pid in only
            )

        def measure(path: str) -> tuple[float, float, float | None]:
            nonlocal sent
            before = front_cpu(path)
            instance_before = group.seconds() if group else None
            rate = send_load(ports[path], config)
            after = front_cpu(path)
            # A postscreen that appeared during the load counts from 0; one that left is lost
            # (postscreen lives 100 s idle: every path is used every few seconds).
            cpu = delta(before, after)
            proxy_pid = proxy_pids.get(path)
            postscreen = delta(before, after, {pid for pid in after if pid != proxy_pid})
            sent += config.messages
            wait_until_drained(postfix, sent)
            # The whole Postfix's CPU includes the drain (the relay of this load to the sink),
            # which is part of what a message costs the instance.
            instance = None
            if group is not None and instance_before is not None:
                instance = (group.seconds() - instance_before) / config.messages
                result.instance_cpu[path].append(instance)
            result.rates[path].append(rate)
            result.cpu[path].append(cpu / config.messages)
            result.postscreen_cpu[path].append(postscreen / config.messages)
            return rate, cpu / config.messages, instance

        # Warm-up: every daemon spawned, every cache opened, on every path.
        warmup = BenchConfig(
            rounds=1, messages=50, sessions=config.sessions, size=config.size, pin=config.pin
        )
        for path in PATHS:
            send_load(ports[path], warmup)
            sent += warmup.messages
        wait_until_drained(postfix, sent)
        for round_index in range(config.rounds):
            if round_index > 0 and time.monotonic() - started > config.budget_seconds:
                result.stopped_early = True
                break
            flip = round_index % 2 == 1  # ABBA: off first in even rounds, the header first in odd ones
            first_off: tuple[float, float, float | None] | None = None
            for path in ("v1", "v2") if not flip else ("v2", "v1"):
                if flip:
                    on = measure(path)
                    off = measure("off")
                else:
                    off = measure("off")
                    on = measure(path)
                first_off = off if first_off is None else first_off
                result.pairs[path].append((on[0], off[0]))
                result.cpu_pairs[path].append((on[1], off[1]))
                if on[2] is not None and off[2] is not None:
                    result.instance_pairs[path].append((on[2], off[2]))
            assert first_off is not None
            direct = measure("direct")
            result.pairs["direct"].append((direct[0], first_off[0]))
            result.cpu_pairs["direct"].append((direct[1], first_off[1]))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proxymx_tools.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=BenchConfig.rounds)
    parser.add_argument("--messages", type=int, default=BenchConfig.messages)
    parser.add_argument("--sessions", type=int, default=BenchConfig.sessions)
    parser.add_argument("--size", type=int, default=BenchConfig.size)
    parser.add_argument("--budget", type=float, default=BenchConfig.budget_seconds, help="seconds")
    parser.add_argument("--no-sweep", action="store_true", help="skip the Reconcile sweep table")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="Postfix and the sink on CPU 0, the proxies and the client on CPU 1",
    )
    args = parser.parse_args(argv)
    if not args.no_sweep:
        # The control plane's table first (no Postfix, no root): what a sweep costs (issue 12).
        from proxymx_tools.sweepcost import sweep_table

        print(sweep_table(), end="\n\n", flush=True)
    missing = missing_tools()
    if missing:
        print(f"bench: skipped: missing {' '.join(missing)} ({INSTALL_HINT})", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("bench: skipped: the private Postfix runs as root (run `sudo make bench`)", file=sys.stderr)
        return 2
    config = BenchConfig(
        rounds=args.rounds,
        messages=args.messages,
        sessions=args.sessions,
        size=args.size,
        budget_seconds=args.budget,
        pin=args.pin,
    )
    print(run_bench(config).table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
