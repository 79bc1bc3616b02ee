"""CheckOutcome's verdict comes from GetCommandInvocation (status, document, summary); the status
event only says where to look (issue 9, finding 4)."""

from __future__ import annotations

from typing import Any

import pytest
from proxymx.aws import Clients
from proxymx.config import Settings
from proxymx.errors import NotReadyYet
from proxymx.launch.context import encode_comment
from proxymx.launch.outcome import OutcomeReport, check_outcome
from proxymx.launch.plan import Invocation
from proxymx.launch.runcommand import RunCommand
from proxymx.models.ssm import parse_ssm_event
from proxymx_tools.embedded import EmbeddedAws, proving_summary, to_sqs_batch
from proxymx_tools.recorder import CallRecorder
from support import DOCUMENT, GROUP, HOOK, lambda_context, load_app


@pytest.fixture
def status_event(world: EmbeddedAws, settings: Settings, clients: Clients) -> dict[str, Any]:
    """The status event of one launch configured through ConfigureInstance."""
    events = world.launch.launch_into_wait(GROUP, HOOK, 1)
    response = load_app("configure_instance").lambda_handler(
        to_sqs_batch(events), lambda_context(), settings=settings, clients=clients
    )
    assert response["batchItemFailures"] == []
    (event,) = world.launch.drain_status_events()
    return event


def read_back(
    monkeypatch: pytest.MonkeyPatch,
    event: dict[str, Any],
    status: str,
    stdout: str,
    *,
    document: str = DOCUMENT,
    code: int = 0,
) -> None:
    """Make GetCommandInvocation answer this for the event's invocation."""
    invocation = Invocation(
        event["detail"]["command-id"],
        event["detail"]["instance-id"],
        document,
        status,
        status,
        code,
        stdout,
        "",
        encode_comment(GROUP, HOOK),
    )
    monkeypatch.setattr(RunCommand, "get_invocation", lambda *args, **kwargs: invocation)


@pytest.fixture
def judge(settings: Settings, clients: Clients) -> Any:
    def run(event: dict[str, Any]) -> OutcomeReport:
        return check_outcome(parse_ssm_event(event), settings, clients, sleep=lambda _: None)

    return run


def test_a_failed_event_over_a_proven_run_continues(
    world: EmbeddedAws,
    calls: CallRecorder,
    status_event: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    judge: Any,
) -> None:
    # Given a status event saying Failed, while the invocation read back succeeded and proves
    status_event["detail"]["status"] = "Failed"
    read_back(monkeypatch, status_event, "Success", proving_summary() + "\n")
    # When CheckOutcome judges it
    report = judge(status_event)
    # Then the invocation decides: the instance goes in service
    assert (report.decision, report.action, report.status) == ("continued", "CONTINUE", "Success")
    assert world.launch.lifecycle_state(status_event["detail"]["instance-id"]) == "InService"


def test_a_success_event_over_a_failed_run_abandons_even_with_a_proving_line(
    world: EmbeddedAws,
    calls: CallRecorder,
    status_event: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    judge: Any,
) -> None:
    # Given a Success event, while the run read back Failed (exit 1) after printing a proving line
    read_back(monkeypatch, status_event, "Failed", proving_summary() + "\n", code=1)
    # When CheckOutcome judges it
    report = judge(status_event)
    # Then the failed run is not proof
    assert (report.decision, report.action, report.status) == ("abandoned", "ABANDON", "Failed")


def test_a_failed_event_ahead_of_a_run_in_progress_is_retried_not_abandoned(
    world: EmbeddedAws,
    calls: CallRecorder,
    status_event: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    judge: Any,
) -> None:
    # Given a Failed event (forged, or ahead of SSM) for a run still in progress
    status_event["detail"]["status"] = "Failed"
    read_back(monkeypatch, status_event, "InProgress", "", code=-1)
    # When CheckOutcome reads it, it retries later; the instance keeps waiting
    with pytest.raises(NotReadyYet, match="InProgress"):
        judge(status_event)
    assert calls.of("complete_lifecycle_action") == []
    assert world.launch.lifecycle_state(status_event["detail"]["instance-id"]) == "Pending:Wait"


def test_an_invocation_of_another_document_is_ignored(
    world: EmbeddedAws,
    calls: CallRecorder,
    status_event: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    judge: Any,
) -> None:
    # Given an event naming our document for an invocation of another document that "proves"
    read_back(monkeypatch, status_event, "Success", proving_summary() + "\n", document="AWS-RunShellScript")
    # When CheckOutcome judges it
    report = judge(status_event)
    # Then nothing is completed
    assert report.decision == "ignored"
    assert calls.of("complete_lifecycle_action") == []


def test_an_undeliverable_run_is_named_by_its_status_details(
    world: EmbeddedAws, status_event: dict[str, Any], monkeypatch: pytest.MonkeyPatch, judge: Any
) -> None:
    # Given a run SSM could not deliver: Status Failed, StatusDetails Undeliverable
    read_back(monkeypatch, status_event, "Failed", "", code=-1)
    invocation = RunCommand(None).get_invocation("x", "y")  # type: ignore[arg-type]
    assert invocation is not None
    undeliverable = Invocation(**{**invocation.__dict__, "status_details": "Undeliverable"})
    monkeypatch.setattr(RunCommand, "get_invocation", lambda *args, **kwargs: undeliverable)
    # When CheckOutcome judges it
    report = judge(status_event)
    # Then the reason says so
    assert report.status == "Undeliverable"
    assert "undeliverable" in report.reason
