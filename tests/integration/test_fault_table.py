"""The fault table of docs/faults.md, row by row (issue 9, "a parametrized test per row").

The cases are READ from the doc: each row is a fault, each flow column its defined outcome (the
bold phrase), the exception the function raises (a backticked exception name) and the metric the
alarms see ("metric `Name`"). For each cell the fault is injected on the embedded AWS, the real
handler runs, and the documented outcome is asserted. A row the test cannot inject, or a fault it
can inject with no row, fails: the doc and the test cannot drift apart.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from proxymx.aws import Clients
from proxymx.config import Settings, load_settings
from proxymx.errors import ProxymxError
from proxymx_tools.embedded import CommandOutcome, EmbeddedAws, to_sqs_batch
from proxymx_tools.recorder import CallRecorder
from proxymx_tools.seed import seed_world
from support import GROUP, HOOK, ROOT, emf_metrics, lambda_context, load_app, load_event

FAULTS_DOC = ROOT / "docs" / "faults.md"
FLOWS = ("ConfigureInstance", "CheckOutcome", "EnableProxyProtocol", "Reconcile")
OUTCOMES = (
    "retried by SQS",
    "retried by Lambda",
    "retried by the next sweep",
    "skipped",
    "sent",
    "ignored",
    "already over",
    "ABANDON",
    "n/a",
)
EXCEPTIONS = ("NotReadyYet", "TransientAwsError", "PermanentAwsError", "ReconcileFailed")


@dataclass(frozen=True)
class Cell:
    fault: str
    flow: str
    outcome: str
    exception: str | None
    metric: str | None


def read_table() -> list[Cell]:
    """The cells of the table under "## The fault table"."""
    text = FAULTS_DOC.read_text(encoding="utf-8")
    section = text.split("## The fault table", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    assert header == ["Fault", *FLOWS], header
    cells = []
    for row in rows[2:]:
        fault, *outcomes = (c.strip() for c in row.strip("|").split("|"))
        assert len(outcomes) == len(FLOWS), row
        for flow, text_ in zip(FLOWS, outcomes, strict=True):
            bold = re.match(r"\*\*(.+?)\*\*", text_)
            assert bold and bold.group(1) in OUTCOMES, f"{fault} / {flow}: no known outcome in {text_!r}"
            exception = next((e for e in EXCEPTIONS if f"`{e}`" in text_.split("(")[0]), None)
            metric = re.search(r"metric `(\w+)`", text_)
            cells.append(Cell(fault, flow, bold.group(1), exception, metric.group(1) if metric else None))
    return cells


# ----- the faults, as the test injects them ---------------------------------------------------


def client_error(code: str, status: int = 400) -> Callable[[str], Exception]:
    def make(operation: str) -> Exception:
        error = {"Error": {"Code": code, "Message": f"injected {code}"}}
        return ClientError({**error, "ResponseMetadata": {"HTTPStatusCode": status}}, operation)

    return make


# Fault -> what the call raises (given the API operation's name). The services' own spellings:
# SSM (JSON protocol) says ThrottlingException / AccessDeniedException / ExpiredTokenException,
# the ELB (query protocol) Throttling / AccessDenied / ExpiredToken.
CALL_FAULTS: dict[str, dict[str, Callable[[str], Exception]]] = {
    "Throttling": {"ssm": client_error("ThrottlingException"), "elb": client_error("Throttling")},
    "5xx": {"ssm": client_error("InternalServerError", 500), "elb": client_error("ServiceUnavailable", 503)},
    "Connection error": {
        "ssm": lambda _: EndpointConnectionError(endpoint_url="https://ssm.us-east-1.amazonaws.com"),
        "elb": lambda _: EndpointConnectionError(endpoint_url="https://elasticloadbalancing.amazonaws.com"),
    },
    "Read timeout": {
        "ssm": lambda _: ReadTimeoutError(endpoint_url="https://ssm.us-east-1.amazonaws.com"),
        "elb": lambda _: ReadTimeoutError(endpoint_url="https://elasticloadbalancing.amazonaws.com"),
    },
    "AccessDenied": {"ssm": client_error("AccessDeniedException"), "elb": client_error("AccessDenied")},
    "InvalidInstanceId": {"ssm": client_error("InvalidInstanceId")},
    "InvocationDoesNotExist": {"ssm": client_error("InvocationDoesNotExist")},
    "LoadBalancerNotFound": {"elb": client_error("LoadBalancerNotFound")},
    "Expired token": {"ssm": client_error("ExpiredTokenException"), "elb": client_error("ExpiredToken")},
}
# Faults of the world rather than of one call.
WORLD_FAULTS = ("Instance gone", "Undeliverable")
# Where each flow gets a call fault: (service, operation).
INJECTED_ON = {
    "ConfigureInstance": ("ssm", "SendCommand"),
    "CheckOutcome": ("ssm", "GetCommandInvocation"),
    "EnableProxyProtocol": ("elb", "DescribeLoadBalancers"),
    "Reconcile": ("elb", "DescribeTags"),
}
CELLS = read_table()


def test_the_table_has_one_row_per_fault_the_test_injects() -> None:
    # Given the faults this test knows how to inject / When the doc's table is read
    rows = list(dict.fromkeys(cell.fault for cell in CELLS))
    # Then each has exactly one row, and there is no row it cannot inject
    assert sorted(rows) == sorted([*CALL_FAULTS, *WORLD_FAULTS])
    assert len(CELLS) == len(rows) * len(FLOWS)


def fault_on(operation: str, make: Callable[[str], Exception]) -> Callable[[Any], None]:
    """A client observer: ``operation`` raises the fault before any answer reaches botocore
    (first: the embedded AWS answers some operations itself in its own before-call)."""

    def observe(client: Any) -> None:
        def before_call(model: Any, **_: Any) -> None:
            raise make(model.name)

        client.meta.events.register_first(f"before-call.*.{operation}", before_call)

    return observe


@dataclass
class Run:
    """What one flow did with the fault: returned or raised, its metrics, its calls."""

    returned: dict[str, Any] | None
    raised: BaseException | None
    metrics: dict[str, list[float]]
    instance_id: str | None = None
    writes: tuple[str, ...] = ()


def observers_for(cell: Cell) -> list[Callable[[Any], None]]:
    if cell.fault in WORLD_FAULTS:
        return []
    service, operation = INJECTED_ON[cell.flow]
    make = CALL_FAULTS[cell.fault].get(service)
    assert make is not None, f"{cell.fault} cannot be injected on {service}.{operation} for {cell.flow}"
    return [fault_on(operation, make)]


@dataclass
class Stage:
    """The embedded world, the launch settings, the call recorder and the captured output."""

    world: EmbeddedAws
    settings: Settings
    calls: CallRecorder
    capsys: pytest.CaptureFixture[str]

    def run(self, cell: Cell, handler: Callable[[Clients], dict[str, Any]], instance_id: str | None) -> Run:
        """Run the handler on clients that see the row's fault; what it did."""
        self.capsys.readouterr()
        start = len(self.calls.calls)
        clients = Clients(observers=observers_for(cell))
        try:
            returned, raised = handler(clients), None
        except Exception as exc:  # the test asserts which exception it is
            returned, raised = None, exc
        writes = tuple(c.operation for c in self.calls.calls[start:] if not c.is_read)
        return Run(returned, raised, emf_metrics(self.capsys.readouterr().out), instance_id, writes)


@pytest.fixture
def stage(
    world: EmbeddedAws, settings: Settings, calls: CallRecorder, capsys: pytest.CaptureFixture[str]
) -> Stage:
    return Stage(world, settings, calls, capsys)


def run_configure_instance(cell: Cell, stage: Stage) -> Run:
    (event,) = stage.world.launch.launch_into_wait(GROUP, HOOK, 1)
    instance_id = event["detail"]["EC2InstanceId"]
    if cell.fault == "Instance gone":
        stage.world.launch.expire_action(instance_id)
    if cell.fault == "Undeliverable":
        stage.world.launch.script_outcome(CommandOutcome.undeliverable(), instance_id)
    app = load_app("configure_instance")
    batch = to_sqs_batch([event])
    return stage.run(
        cell,
        lambda clients: app.lambda_handler(batch, lambda_context(), settings=stage.settings, clients=clients),
        instance_id,
    )


def run_check_outcome(cell: Cell, stage: Stage) -> Run:
    (event,) = stage.world.launch.launch_into_wait(GROUP, HOOK, 1)
    instance_id = event["detail"]["EC2InstanceId"]
    if cell.fault == "Undeliverable":
        stage.world.launch.script_outcome(CommandOutcome.undeliverable(), instance_id)
    sent = load_app("configure_instance").lambda_handler(
        to_sqs_batch([event]), lambda_context(), settings=stage.settings, clients=Clients()
    )
    assert sent["batchItemFailures"] == []
    (status_event,) = stage.world.launch.drain_status_events()
    if cell.fault == "Instance gone":
        stage.world.launch.expire_action(instance_id)
    app = load_app("check_outcome")
    context = lambda_context("CheckOutcomeFunction")
    return stage.run(
        cell,
        lambda clients: app.lambda_handler(status_event, context, settings=stage.settings, clients=clients),
        instance_id,
    )


def run_enable_proxy_protocol(cell: Cell, stage: Stage) -> Run:
    event = seed_world(load_event("elb-create-smtp"))
    app = load_app("enable_proxy_protocol")
    context = lambda_context("EnableProxyProtocolFunction")
    config = load_settings({"SELF_ROLE_ARNS": "arn:aws:iam::123456789012:role/proxymx-EnableProxyProtocol"})
    return stage.run(
        cell, lambda clients: app.lambda_handler(event, context, settings=config, clients=clients), None
    )


def run_reconcile(cell: Cell, stage: Stage) -> Run:
    seed_world(load_event("elb-create-smtp"))
    app = load_app("reconcile")
    context = lambda_context("ReconcileFunction")
    event = load_event("scheduled-reconcile")
    settings = stage.settings
    return stage.run(
        cell, lambda clients: app.lambda_handler(event, context, settings=settings, clients=clients), None
    )


APPLICABLE = [cell for cell in CELLS if cell.outcome != "n/a"]


@pytest.mark.parametrize("cell", APPLICABLE, ids=lambda c: f"{c.fault}-{c.flow}")
def test_each_fault_has_its_documented_outcome_in_each_flow(
    cell: Cell, stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the fault of this row, injected where the flow meets it (no real waiting: the bounded
    # backoffs and re-reads are recorded instead of slept)
    naps: list[float] = []
    monkeypatch.setattr(time, "sleep", naps.append)
    # When the flow's handler runs
    if cell.flow == "ConfigureInstance":
        run = run_configure_instance(cell, stage)
    elif cell.flow == "CheckOutcome":
        run = run_check_outcome(cell, stage)
    elif cell.flow == "Reconcile":
        run = run_reconcile(cell, stage)
    else:
        run = run_enable_proxy_protocol(cell, stage)
    # Then the outcome is the documented one
    if cell.outcome == "retried by Lambda":
        assert isinstance(run.raised, ProxymxError), f"expected the function to raise, got {run}"
        assert cell.exception is not None, f"{cell.fault}/{cell.flow}: the doc names no exception"
        assert type(run.raised).__name__ == cell.exception, run.raised
        assert run.metrics.get("Failures") == [1.0]
    elif cell.outcome == "retried by the next sweep":
        # The sweep went on past the failed load balancer and failed at its end, its metrics out
        assert type(run.raised).__name__ == cell.exception, run.raised
    else:
        assert run.raised is None, f"{cell.fault}/{cell.flow} raised {run.raised!r}"
        assert run.returned is not None
    if cell.outcome in ("retried by SQS", "sent", "ignored"):
        assert run.returned is not None
        retried = [item["itemIdentifier"] for item in run.returned["batchItemFailures"]]
        assert (len(retried) == 1) is (cell.outcome == "retried by SQS"), run.returned
        assert run.writes.count("send_command") == (0 if cell.outcome == "ignored" else 1)
    if cell.outcome == "skipped":
        assert run.returned is not None
        assert run.writes == ()
    if cell.outcome == "already over":
        assert run.returned is not None
        assert run.returned["decision"] == "already-over"
    if cell.outcome == "ABANDON":
        assert run.returned is not None
        assert run.returned["action"] == "ABANDON"
        assert stage.world.launch.lifecycle_state(str(run.instance_id)) == "Terminating"
    if cell.metric is not None:
        assert run.metrics.get(cell.metric), f"metric {cell.metric} not emitted: {run.metrics}"
    # And a function that raised wrote nothing: no lifecycle completion, no load balancer change
    if run.raised is not None:
        assert run.writes == ()
