"""``make bench``: what the PROXY-protocol hop costs the data plane.

One private Postfix, configured by the SSM document's script (the exact text from
template.yaml). Three paths into the same postscreen -> smtpd pipeline:

- ``direct``: a second postscreen service on its own loopback port that does not expect a
  header (the same Postfix, the same daemons; only the proxy hop and the header differ);
- ``v1``: HAProxy ``send-proxy`` (a Classic ELB with the policy) -> the configured port;
- ``v2``: HAProxy ``send-proxy-v2`` (an NLB with ``proxy_protocol_v2.enabled``) -> the same.

Every round sends the same ``smtp-source`` load down each path, in an order that rotates
from round to round (interleaved, so drift on the machine hits every path alike); the queue
is drained to the sink before each measurement so every run starts from the same state. The
figure is messages accepted per second (the client's wall time for the whole load); the
table shows the median over the rounds and each proxied path's ratio to direct.

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

PATHS = ("direct", "v1", "v2")


@dataclass
class BenchConfig:
    rounds: int = 7
    messages: int = 500
    sessions: int = 8
    size: int = 4096
    budget_seconds: float = 150.0


@dataclass
class BenchResult:
    config: BenchConfig
    postfix_version: str
    rates: dict[str, list[float]] = field(default_factory=lambda: {path: [] for path in PATHS})
    stopped_early: bool = False

    def median(self, path: str) -> float:
        return statistics.median(self.rates[path])

    def ratio(self, path: str) -> float:
        return self.median(path) / self.median("direct")

    def table(self) -> str:
        cfg = self.config
        lines = [
            f"proxymx bench: Postfix {self.postfix_version}, smtp-source -s {cfg.sessions} -m {cfg.messages} "
            f"-l {cfg.size}, {len(self.rates['direct'])} interleaved round(s), median"
            + (" (stopped early: time budget)" if self.stopped_early else ""),
            "",
            f"{'path':<34} {'msg/s (median)':>15} {'min':>8} {'max':>8} {'ratio':>7}",
            f"{'-' * 34} {'-' * 15} {'-' * 8} {'-' * 8} {'-' * 7}",
        ]
        labels = {
            "direct": "direct (postscreen, no header)",
            "v1": "v1 proxy (Classic ELB send-proxy)",
            "v2": "v2 proxy (NLB send-proxy-v2)",
        }
        for path in PATHS:
            rates = self.rates[path]
            lines.append(
                f"{labels[path]:<34} {self.median(path):>15.1f} {min(rates):>8.1f} {max(rates):>8.1f} "
                f"{self.ratio(path):>7.2f}"
            )
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
        yield postfix, {"direct": direct_port, "v1": proxies[0].port, "v2": proxies[1].port}
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
    args = parser.parse_args(argv)
    missing = missing_tools()
    if missing:
        print(f"bench: skipped: missing {' '.join(missing)} ({INSTALL_HINT})", file=sys.stderr)
        return 2
    import os

    if os.geteuid() != 0:
        print("bench: skipped: the private Postfix runs as root (run `sudo make bench`)", file=sys.stderr)
        return 2
    config = BenchConfig(rounds=args.rounds, messages=args.messages, sessions=args.sessions, size=args.size)
    print(run_bench(config).table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
