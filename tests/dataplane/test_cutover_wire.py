"""The cutover on the wire (issue 7, item 6): a fleet already taking mail turns to the PROXY
protocol under continuous load, and the order decides whether mail is lost.

Two private Postfix instances (fresh Debian configuration, not configured) behind HAProxy
round-robin, which stands for a Classic ELB and follows the ELB's backend policy read back from
the embedded AWS (graceful reload when it changes). Four senders on 127.0.0.2-5 keep sending,
retrying a 4xx as an MTA does; a 5xx is a bounce. See :mod:`proxymx_tools.cutover_wire`.

- Switch first (the control): the header reaches a Postfix that does not expect it -> 5xx, mail
  bounced. proxymx's interlock refuses this switch; an operator's AWS CLI does not.
- Fleet first: both members configured by the document's real script one after the other while
  mail flows, then the switch -> every message submitted reaches a sink, zero 5xx; the 421s and
  the gap (first member configured -> proxy sending the header) are printed.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from proxymx.aws import Clients
from proxymx.config import load_settings
from proxymx.loadbalancer.readiness import tag_value_from_summary
from proxymx.loadbalancer.service import EnableProxyProtocol, cutovers_for
from proxymx_tools.cutover_chain import deliver_status_events
from proxymx_tools.cutover_wire import CutoverBench, MailLoad, describe_counts
from proxymx_tools.embedded import STATE_TABLE_NAME, current_extension, embedded_aws
from proxymx_tools.seed_launch import ensure_document

REGION = "us-east-1"
# Accepted before anything changes (the fleet takes mail), and after the switch (it still does).
WARM_UP = 10
AFTER = 10


@pytest.fixture
def bench() -> Iterator[tuple[CutoverBench, Any]]:
    root = Path(tempfile.mkdtemp(prefix="proxymx-wire-"))
    root.chmod(0o755)
    with embedded_aws(REGION):
        elb = boto3.client("elb", region_name=REGION)
        started = CutoverBench(root)
        try:
            yield started.start(elb), elb
        finally:
            started.stop()
            import shutil

            shutil.rmtree(root, ignore_errors=True)


def ensure_classic(bench: CutoverBench) -> Any:
    """EnableProxyProtocol on the bench's ELB: the same code as the event path and the sweep."""
    settings = load_settings({})
    return EnableProxyProtocol(settings, Clients(), sleep=lambda _s: None).ensure_classic(bench.elb_name)


def wait_for_bounces(load: MailLoad, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while not load.counts.bounced and time.monotonic() < deadline:
        time.sleep(0.05)
    return len(load.counts.bounced)


def test_switch_first_bounces_mail(bench: tuple[CutoverBench, Any]) -> None:
    wire, elb = bench
    # Given the fleet taking mail through the proxy, no header anywhere
    load = MailLoad(wire.proxy.port).start()
    try:
        load.wait_for(WARM_UP)
        assert len(load.counts.accepted) >= WARM_UP, load.counts
        # (proxymx itself refuses to switch in front of this fleet: the interlock)
        assert ensure_classic(wire).outcome == "blocked"

        # When an operator switches the ELB by hand before the fleet is configured
        wire.switch_by_hand(elb)
        wire.wait_switched()
        bounced_before_configuring = wait_for_bounces(load)
        # and only then configures the fleet
        runs = [wire.configure(index) for index in range(2)]
        after = len(load.counts.accepted)
        load.wait_for(after + AFTER)
    finally:
        load.stop()
    counts = load.counts
    delivered = wire.fleet.wait_delivered(counts.accepted)
    print(describe_counts("switch first", counts, delivered, None))

    # Then the configuration itself worked, and mail flows again afterwards
    assert [run.exit_code for run in runs] == [0, 0], [run.stderr for run in runs]
    assert len(counts.accepted) >= after + AFTER
    # But while the header reached an unconfigured Postfix, senders got 5xx and bounced mail
    assert bounced_before_configuring > 0
    assert counts.replies_5xx >= len(counts.bounced) > 0
    # and the bounced messages never arrived anywhere; every accepted one did
    assert counts.accepted <= set(delivered)
    assert not counts.bounced & set(delivered)
    assert counts.submitted == len(counts.accepted) + len(counts.bounced)


@pytest.mark.parametrize("parallel", [False, True], ids=["one-after-the-other", "in-parallel"])
def test_fleet_first_loses_no_mail(bench: tuple[CutoverBench, Any], parallel: bool) -> None:
    wire, _elb = bench
    # Given the fleet taking mail through the proxy, no header anywhere
    load = MailLoad(wire.proxy.port).start()
    try:
        load.wait_for(WARM_UP)
        assert len(load.counts.accepted) >= WARM_UP, load.counts

        # When the document configures each member while mail flows: one after the other (as the
        # embedded SSM does), or both at once (as SSM runs the targets of one command)
        with ThreadPoolExecutor(max_workers=2 if parallel else 1) as pool:
            runs = list(pool.map(wire.configure, range(len(wire.instance_ids))))
        for instance_id, run in zip(wire.instance_ids, runs, strict=True):
            value = tag_value_from_summary(run.summary)
            assert value is not None, run.stdout + run.stderr
            # (the readiness CheckOutcome records from the document's proof)
            boto3.client("ec2", region_name=REGION).create_tags(
                Resources=[instance_id], Tags=[{"Key": "proxymx:proxy-protocol", "Value": value}]
            )
        # and then EnableProxyProtocol switches the ELB, which the proxy follows
        result = ensure_classic(wire)
        wire.wait_switched()
        after = len(load.counts.accepted)
        load.wait_for(after + AFTER)
    finally:
        load.stop()
    counts = load.counts
    delivered = wire.fleet.wait_delivered(counts.accepted)
    gap = wire.timeline.gap
    label = "fleet first, " + ("in parallel" if parallel else "one after the other")
    print(describe_counts(label, counts, delivered, gap))
    print(f"{label} timeline: {wire.timeline.describe()}")

    # Then the switch happened only once every member was proven
    assert [run.summary.result if run.summary else None for run in runs] == ["configured"] * 2
    assert result.outcome == "changed", result.reason
    assert gap is not None
    # and every message submitted was accepted and reached a sink: exactly, by Message-Id
    assert counts.replies_5xx == 0, counts.replies
    assert not counts.bounced
    assert counts.submitted == len(counts.accepted)
    assert set(delivered) == counts.accepted
    assert len(counts.accepted) >= after + AFTER
    # and after the switch both members read the senders' own addresses from the header
    for postfix in wire.fleet.members:
        assert re.search(r"postscreen\[\d+\]: CONNECT from \[127\.0\.0\.[2-5]\]:\d+", postfix.log_text())


def test_the_real_chain_cuts_over_a_fleet_under_load(bench: tuple[CutoverBench, Any]) -> None:
    wire, _elb = bench
    # Given the fleet registered with the embedded SSM, whose commands run the document's real
    # script on each member's own Postfix, and the cutover engine on (Cutover=auto, the default)
    world = current_extension()
    assert world is not None
    config = load_settings({"STATE_TABLE": STATE_TABLE_NAME})
    ensure_document(config.document_name)
    wire.use_real_documents(world)
    load = MailLoad(wire.proxy.port).start()
    try:
        load.wait_for(WARM_UP)
        assert len(load.counts.accepted) >= WARM_UP, load.counts

        # When EnableProxyProtocol meets the unready fleet (the event path; the sweep does the same):
        # it starts the cutover, and the embedded SSM runs the document on both members while mail flows
        clients = Clients()
        service = EnableProxyProtocol(
            config, clients, sleep=lambda _s: None, cutovers=cutovers_for(config, clients)
        )
        started = service.ensure_classic(wire.elb_name)
        # and each status event reaches CheckOutcome, the last one switching the ELB, which the proxy follows
        reports = deliver_status_events(world, config)
        wire.wait_switched()
        after = len(load.counts.accepted)
        load.wait_for(after + AFTER)
    finally:
        load.stop()
    counts = load.counts
    delivered = wire.fleet.wait_delivered(counts.accepted)
    gap = wire.timeline.gap
    print(describe_counts("real chain", counts, delivered, gap))
    print(f"real chain timeline: {wire.timeline.describe()}")

    # Then the cutover went blocked -> both members configured and proven -> switched
    assert started.outcome == "blocked" and "cutover started: 2 target(s)" in started.reason, started.reason
    assert [report.decision for report in reports] == ["cutover-progress"] * 2
    assert len(wire.timeline.configured) == 2
    assert gap is not None
    # and every message submitted was accepted and reached a sink, with zero 5xx
    assert counts.replies_5xx == 0, counts.replies
    assert not counts.bounced
    assert counts.submitted == len(counts.accepted)
    assert set(delivered) == counts.accepted
    assert len(counts.accepted) >= after + AFTER
