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

Every round sends the same ``smtp-source`` load down each path, in an order that rotates
from round to round (interleaved, so drift on the machine hits every path alike); the queue
is drained to the sink before each measurement so every run starts from the same state. The
figure is messages accepted per second (the client's wall time for the whole load); the
table shows the median over the rounds of each path's rate, and the median over the rounds of
its ratio to ``off`` (header on / off) and to ``direct`` in the same round (paired: a round the
shared machine slowed down moves both sides).

Bounded in time: the rounds stop early (and say so) when the budget runs out.
"""

from __future__ import annotations

import argparse
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
    messages: int = 300
    sessions: int = 8
    size: int = 4096
    budget_seconds: float = 240.0


@dataclass
class BenchResult:
    config: BenchConfig
    postfix_version: str
    rates: dict[str, list[float]] = field(default_factory=lambda: {path: [] for path in PATHS})
    stopped_early: bool = False

    def median(self, path: str) -> float:
        return statistics.median(self.rates[path])

    def ratio(self, path: str, reference: str = "off") -> float:
        """The median over the rounds of path / reference in the same round: paired, so a round
        the neighbours slowed down moves both sides and cancels out."""
        return statistics.median(a / b for a, b in zip(self.rates[path], self.rates[reference], strict=True))

    def table(self) -> str:
        cfg = self.config
        lines = [
            f"proxymx bench: Postfix {self.postfix_version}, smtp-source -s {cfg.sessions} -m {cfg.messages} "
            f"-l {cfg.size}, {len(self.rates['off'])} interleaved round(s), median"
            + (" (stopped early: time budget)" if self.stopped_early else ""),
            "",
            f"{'path':<38} {'msg/s (median)':>15} {'min':>8} {'max':>8} {'x off':>7} {'x direct':>9}",
            f"{'-' * 38} {'-' * 15} {'-' * 8} {'-' * 8} {'-' * 7} {'-' * 9}",
        ]
        labels = {
            "off": "proxy, header off (plain mode tcp)",
            "v1": "proxy, header v1 (Classic send-proxy)",
            "v2": "proxy, header v2 (NLB send-proxy-v2)",
            "direct": "direct, no proxy (reference)",
        }
        for path in PATHS:
            rates = self.rates[path]
            lines.append(
                f"{labels[path]:<38} {self.median(path):>15.1f} {min(rates):>8.1f} {max(rates):>8.1f} "
                f"{self.ratio(path):>7.2f} {self.ratio(path, 'direct'):>9.2f}"
            )
        verdicts = [
            f"{path} {self.ratio(path):.2f} {'ok' if self.ratio(path) >= HEADER_TARGET else 'BELOW'}"
            for path in ("v1", "v2")
        ]
        lines += [
            "",
            f"header on / header off, same proxy (target >= {HEADER_TARGET}): " + ", ".join(verdicts),
        ]
        return "\n".join(lines)


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
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
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
def bench_rig() -> Iterator[tuple[LocalPostfix, dict[str, int]]]:
    """The configured Postfix and the port of each path; everything stopped on exit."""
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
        yield (
            postfix,
            {"direct": direct_port, "v1": proxies[0].port, "v2": proxies[1].port, "off": proxies[2].port},
        )
    finally:
        for proxy in proxies:
            proxy.stop()
        postfix.stop()
        shutil.rmtree(root, ignore_errors=True)


def run_bench(config: BenchConfig) -> BenchResult:
    started = time.monotonic()
    with bench_rig() as (postfix, ports):
        version = postfix.postconf("-h", "mail_version").strip()
        result = BenchResult(config, version)
        sent = 0
        # Warm-up: every daemon spawned, every cache opened, on every path.
        warmup = BenchConfig(rounds=1, messages=50, sessions=config.sessions, size=config.size)
        for path in PATHS:
            send_load(ports[path], warmup)
            sent += warmup.messages
        wait_until_drained(postfix, sent)
        for round_index in range(config.rounds):
            if round_index > 0 and time.monotonic() - started > config.budget_seconds:
                result.stopped_early = True
                break
            order = PATHS[round_index % len(PATHS) :] + PATHS[: round_index % len(PATHS)]
            for path in order:
                result.rates[path].append(send_load(ports[path], config))
                sent += config.messages
                wait_until_drained(postfix, sent)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proxymx_tools.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=BenchConfig.rounds)
    parser.add_argument("--messages", type=int, default=BenchConfig.messages)
    parser.add_argument("--sessions", type=int, default=BenchConfig.sessions)
    parser.add_argument("--size", type=int, default=BenchConfig.size)
    parser.add_argument("--budget", type=float, default=BenchConfig.budget_seconds, help="seconds")
    parser.add_argument("--no-sweep", action="store_true", help="skip the Reconcile sweep table")
    args = parser.parse_args(argv)
    if not args.no_sweep:
        # The control plane's table first (no Postfix, no root): what a sweep costs (issue 12).
        from proxymx_tools.sweepcost import sweep_table

        print(sweep_table(), end="\n\n", flush=True)
    missing = missing_tools()
    if missing:
        print(f"bench: skipped: missing {' '.join(missing)} ({INSTALL_HINT})", file=sys.stderr)
        return 2
    import os

    if os.geteuid() != 0:
        print("bench: skipped: the private Postfix runs as root (run `sudo make bench`)", file=sys.stderr)
        return 2
    config = BenchConfig(
        rounds=args.rounds,
        messages=args.messages,
        sessions=args.sessions,
        size=args.size,
        budget_seconds=args.budget,
    )
    print(run_bench(config).table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
