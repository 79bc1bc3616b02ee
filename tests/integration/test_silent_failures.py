"""Failures that used to be only logged (issue 9, finding 8) emit the metrics SilentFailuresAlarm
watches: a failed lifecycle heartbeat (ConfigureInstance) and a failure notification that could not
be published (CheckOutcome)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from proxymx.aws import Clients
from proxymx.config import Settings, load_settings
from proxymx_tools import template as tpl
from proxymx_tools.embedded import STATE_TABLE_NAME, CommandOutcome, EmbeddedAws, to_sqs_batch
from support import DOCUMENT, GROUP, HOOK, emf_metrics, lambda_context, load_app


@pytest.fixture
def denied_heartbeats() -> Iterator[Clients]:
    """Clients whose role may not record lifecycle heartbeats."""

    def observe(client: Any) -> None:
        if client.meta.service_model.service_name != "autoscaling":
            return

        def before_call(**_: Any) -> None:
            error = {"Error": {"Code": "AccessDenied", "Message": "not authorized"}}
            raise ClientError(error, "RecordLifecycleActionHeartbeat")  # type: ignore[arg-type]

        # First: the embedded AWS answers heartbeats itself in its own before-call.
        client.meta.events.register_first(
            "before-call.autoscaling.RecordLifecycleActionHeartbeat", before_call
        )

    yield Clients(observers=[observe])


def test_a_denied_heartbeat_is_counted(
    world: EmbeddedAws,
    denied_heartbeats: Clients,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given an instance whose agent is still not Online five minutes after its launch, and a role
    # that may not record heartbeats
    events = world.launch.launch_into_wait(GROUP, HOOK, 1, online_after_polls=5)
    events[0]["time"] = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # When its event is handled
    load_app("configure_instance").lambda_handler(
        to_sqs_batch(events), lambda_context(), settings=settings, clients=denied_heartbeats
    )
    # Then the failed heartbeat is a metric, not only a log line
    assert emf_metrics(capsys.readouterr().out)["HeartbeatsFailed"] == [1.0]


def test_an_unpublished_failure_notification_is_counted(
    world: EmbeddedAws, clients: Clients, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a notification topic that does not exist (deleted, or a typo in NotificationTopicArn)
    settings = load_settings(
        {
            "DOCUMENT_NAME": DOCUMENT,
            "STATE_TABLE": STATE_TABLE_NAME,
            "NOTIFICATION_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:gone",
        }
    )
    world.launch.script_outcome(CommandOutcome.failed())
    events = world.launch.launch_into_wait(GROUP, HOOK, 1)
    load_app("configure_instance").lambda_handler(
        to_sqs_batch(events), lambda_context(), settings=settings, clients=clients
    )
    capsys.readouterr()
    # When CheckOutcome abandons the instance and cannot publish why
    (status_event,) = world.launch.drain_status_events()
    load_app("check_outcome").lambda_handler(
        status_event, lambda_context("CheckOutcomeFunction"), settings=settings, clients=clients
    )
    # Then the lost notification is a metric
    metrics = emf_metrics(capsys.readouterr().out)
    assert metrics["ConfigurationFailed"] == [1.0]
    assert metrics["NotificationsFailed"] == [1.0]


def test_the_alarm_watches_both_metrics() -> None:
    alarm = tpl.load_template()["Resources"]["SilentFailuresAlarm"]["Properties"]
    watched = {m["MetricStat"]["Metric"]["MetricName"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert watched == {"HeartbeatsFailed", "NotificationsFailed"}
