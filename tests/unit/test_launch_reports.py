"""The launch flow's reports, decided without AWS: which records come back to the queue, what each
status counts, the batch's shared outcome (ConfigureInstance), and CheckOutcome's shared outcome
and settled status. Written for what `make mutation` found unpinned (issue 9: removing "failed"
from the retried statuses would acknowledge a record whose AWS call failed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from proxymx.launch.configure import (
    RETRIED,
    STATUS_METRICS,
    LaunchBatchReport,
    LaunchOutcome,
    RecordNotSettled,
)
from proxymx.launch.outcome import SHARED_OUTCOME, OutcomeReport, settled_status
from proxymx.launch.plan import Invocation
from proxymx.results import Metric

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def report(*statuses: str) -> LaunchBatchReport:
    batch = LaunchBatchReport()
    for n, status in enumerate(statuses):
        batch.add(LaunchOutcome(f"m{n}", status, f"why {n}", f"i-{n:017x}"))  # type: ignore[arg-type]
    return batch


@pytest.mark.parametrize(
    ("status", "comes_back"),
    [
        ("sent", False),
        ("ignored", False),
        ("abandoned", False),
        ("not-ready", True),
        ("rejected", True),
        ("failed", True),
    ],
)
def test_exactly_the_unsettled_statuses_come_back_to_the_queue(status: str, comes_back: bool) -> None:
    # Given one record with this status
    batch = report(status)
    # When the batch answers SQS / Then the record is a batch item failure exactly when it must
    # be retried (an AWS call failed, the agent is late, the event was malformed)
    assert batch.outcomes["m0"].retry is comes_back
    assert (status in RETRIED) is comes_back
    if comes_back:
        with pytest.raises(RecordNotSettled, match=status):
            batch.settle({"messageId": "m0"})
        assert batch.retried == [batch.outcomes["m0"]]
    else:
        assert batch.settle({"messageId": "m0"}).status == status
        assert batch.retried == []


def test_a_record_the_batch_never_processed_comes_back() -> None:
    with pytest.raises(RecordNotSettled, match="not processed"):
        report("sent").settle({"messageId": "m-unknown"})


def test_each_status_counts_under_the_metric_the_alarms_and_dashboard_read() -> None:
    # Given a batch with every status once, a command sent, and two failed heartbeats
    batch = report("sent", "ignored", "not-ready", "rejected", "failed", "abandoned", "failed")
    batch.heartbeat_failures.extend(["i-1", "i-2"])
    # When its metrics are emitted / Then each is named as the template's alarms and dashboard say
    assert batch.metrics() == [
        Metric("LaunchConflicts", "Count", 1),
        Metric("LaunchesFailed", "Count", 2),
        Metric("LaunchesIgnored", "Count", 1),
        Metric("AgentsNotReady", "Count", 1),
        Metric("MalformedLaunchEvents", "Count", 1),
        Metric("InstancesSent", "Count", 1),
        Metric("SendCommandCalls", "Count", 0),
        Metric("HeartbeatsFailed", "Count", 2),
    ]
    assert set(STATUS_METRICS) == {"sent", "ignored", "not-ready", "rejected", "failed", "abandoned"}
    # (the template's alarms and dashboard read these by name)
    template = TEMPLATE.read_text(encoding="utf-8")
    for name in ("InstancesSent", "AgentsNotReady", "LaunchesFailed", "LaunchConflicts", "HeartbeatsFailed"):
        assert name in template, f"metric {name} is on no alarm or dashboard"
    # And a batch with no failed heartbeat does not count any
    assert "HeartbeatsFailed" not in [m.name for m in report("sent").metrics()]


@pytest.mark.parametrize(
    ("statuses", "outcome"),
    [
        ((), "compliant"),
        (("rejected",), "rejected"),
        (("rejected", "rejected"), "rejected"),
        (("rejected", "sent"), "failed"),
        (("failed", "sent"), "failed"),
        (("sent", "ignored"), "changed"),
        (("abandoned",), "changed"),
        (("ignored", "ignored"), "ignored"),
        (("not-ready",), "compliant"),
        (("not-ready", "ignored"), "compliant"),
    ],
)
def test_the_batch_outcome_in_the_shared_vocabulary(statuses: tuple[str, ...], outcome: str) -> None:
    assert report(*statuses).outcome == outcome


def test_the_batch_reason_counts_statuses_and_commands() -> None:
    assert report("sent", "sent", "failed").reason == "1 failed, 2 sent; 0 command(s) sent"
    assert report().reason == "no launch; 0 command(s) sent"
    # A batch of malformed records says why the first one was refused
    assert report("rejected").reason == "why 0"
    assert report("sent").to_dict()["outcome"] == "changed"


@pytest.mark.parametrize(
    ("decision", "outcome"),
    [
        ("continued", "changed"),
        ("abandoned", "changed"),
        ("left-to-hook-default", "compliant"),
        ("already-over", "compliant"),
        ("ignored", "ignored"),
    ],
)
def test_check_outcome_decisions_in_the_shared_vocabulary(decision: str, outcome: str) -> None:
    assert SHARED_OUTCOME[decision] == outcome
    result = OutcomeReport(decision, "why")  # type: ignore[arg-type]
    assert result.outcome == outcome
    assert result.to_dict()["outcome"] == outcome
    assert "measured" not in result.to_dict()


def invocation(status: str, details: str) -> Invocation:
    return Invocation("c-1", "i-1", "doc", status, details, 0, "", "", "")


@pytest.mark.parametrize(
    ("status", "details", "settled"),
    [
        ("Failed", "Undeliverable", "Undeliverable"),
        ("TimedOut", "DeliveryTimedOut", "DeliveryTimedOut"),
        ("TimedOut", "ExecutionTimedOut", "ExecutionTimedOut"),
        ("Success", "Success", "Success"),
        ("Failed", "Failed", "Failed"),
        # A detail that is no terminal status of its own keeps the status
        ("InProgress", "InProgress", "InProgress"),
        ("Failed", "Something new", "Failed"),
    ],
)
def test_the_settled_status_names_undeliverable_and_delivery_timeouts(
    status: str, details: str, settled: str
) -> None:
    assert settled_status(invocation(status, details)) == settled


@pytest.mark.parametrize(
    ("status", "level"),
    [
        ("rejected", "WARNING"),
        ("failed", "WARNING"),
        ("abandoned", "WARNING"),
        ("sent", "INFO"),
        ("ignored", "INFO"),
        ("not-ready", "INFO"),
    ],
)
def test_each_launch_is_logged_at_its_level_with_the_fields_operators_search_by(
    status: str, level: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given one launch outcome / When the batch records it
    with caplog.at_level("INFO"):
        LaunchBatchReport().add(LaunchOutcome("m-1", status, "why", "i-1", "c-1"))  # type: ignore[arg-type]
    # Then one line at its level, with the message id, instance, command and outcome as fields
    (record,) = [r for r in caplog.records if r.getMessage().startswith("launch ")]
    assert (record.levelname, record.getMessage()) == (level, f"launch {status}: why")
    fields = {
        key: getattr(record, key, None) for key in ("message_id", "instance_id", "command_id", "outcome")
    }
    assert fields == {"message_id": "m-1", "instance_id": "i-1", "command_id": "c-1", "outcome": status}


def test_the_batch_answers_the_invocation_with_its_launches_and_commands() -> None:
    from proxymx.launch.configure import SentCommand

    batch = report("sent")
    batch.commands.append(SentCommand("c-1", "g", "h", ("i-1",)))
    batch.heartbeats.append("i-1")
    data = batch.to_dict()
    assert set(data) == {"outcome", "reason", "launches", "commands", "heartbeats"}
    assert data["launches"][0]["status"] == "sent"
    assert data["commands"] == [
        {"command_id": "c-1", "group_name": "g", "hook_name": "h", "instance_ids": ("i-1",)}
    ]
    assert data["heartbeats"] == ["i-1"]
    assert data["reason"] == "1 sent; 1 command(s) sent"


def test_a_check_outcome_report_is_not_notified_until_a_notification_went_out() -> None:
    result = OutcomeReport("ignored", "why")
    assert result.notified is False
    assert result.to_dict()["notified"] is False
