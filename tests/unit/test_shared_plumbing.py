"""What every flow shares: Clients, the one error translator, the one chunk helper, and the
handler plumbing (proxymx.aws, proxymx.errors, proxymx.batching, proxymx.handler)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError
from proxymx import aws
from proxymx.aws import Clients
from proxymx.batching import chunked
from proxymx.budget import call_budget
from proxymx.config import load_settings, settings
from proxymx.errors import (
    MalformedEvent,
    NotReadyYet,
    PermanentAwsError,
    TransientAwsError,
    error_code,
    translate,
)
from proxymx.handler import handle
from proxymx.results import FailedResult, Metric

# ----- Clients ---------------------------------------------------------------------------------


def test_clients_are_built_once_per_service_with_the_one_config() -> None:
    # Given a factory that records what it is asked for
    made: list[tuple[str, Any]] = []

    def factory(service: str, *, config: Any) -> object:
        made.append((service, config))
        return object()

    clients = Clients(factory)
    # When a service is used twice, and another once
    first, again, other = clients.ssm, clients.ssm, clients.elb
    # Then each client was built once, lazily, with proxymx's retry and user agent settings
    assert first is again and other is not first
    assert [service for service, _ in made] == ["ssm", "elb"]
    config = made[0][1]
    # (the call budget of the function's Timeout, proxymx/budget.py; "total_max_attempts" counts
    # the first attempt too)
    budget = call_budget(settings().function_timeout_seconds)
    assert config.retries == {"mode": "standard", "total_max_attempts": budget.attempts}
    assert (config.connect_timeout, config.read_timeout) == (budget.connect_timeout, budget.read_timeout)
    assert config.user_agent_extra == aws.USER_AGENT_EXTRA


def test_a_client_can_be_set_and_a_session_can_be_the_source() -> None:
    import boto3

    clients = Clients(
        boto3.Session(region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    )
    stub = object()
    clients.autoscaling = stub  # type: ignore[assignment]
    assert clients.autoscaling is stub
    assert clients.sns.meta.region_name == "eu-west-1"


def test_observers_see_every_client_created_after_they_were_added() -> None:
    seen_globally: list[object] = []
    seen_here: list[object] = []
    clients = Clients(lambda service, *, config: f"{service}-client", observers=[seen_here.append])
    aws.add_client_observer(seen_globally.append)
    try:
        clients.ec2  # noqa: B018 - building it is the point
    finally:
        aws.remove_client_observer(seen_globally.append)
    clients.ssm  # noqa: B018
    assert seen_here == ["ec2-client", "ssm-client"]
    assert seen_globally == ["ec2-client"]


# ----- the one translator ----------------------------------------------------------------------


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "Op")


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("LoadBalancerNotFound", NotReadyYet),
        ("TargetGroupNotFound", NotReadyYet),
        # One throttling/5xx set for every adapter (the ELB and the launch flow's were two)
        ("Throttling", TransientAwsError),
        ("ThrottlingException", TransientAwsError),
        ("TooManyUpdates", TransientAwsError),
        ("RequestLimitExceeded", TransientAwsError),
        ("InternalServerError", TransientAwsError),
        ("ServiceUnavailable", TransientAwsError),
        ("AccessDenied", PermanentAwsError),
        ("ValidationError", PermanentAwsError),
    ],
)
def test_client_errors_become_domain_errors(code: str, kind: type[Exception]) -> None:
    translated = translate(client_error(code), "DescribeThings")
    assert type(translated) is kind
    assert str(translated).startswith(f"DescribeThings: {code}")


@pytest.mark.parametrize(
    "exc",
    [
        EndpointConnectionError(endpoint_url="https://ssm"),
        ConnectionClosedError(endpoint_url="https://ssm"),
        ConnectTimeoutError(endpoint_url="https://ssm"),
        ReadTimeoutError(endpoint_url="https://ssm"),
        ResponseParserError("garbled"),
    ],
)
def test_network_errors_after_botocores_retries_are_transient(exc: Exception) -> None:
    translated = translate(exc, "SendCommand")
    assert type(translated) is TransientAwsError
    assert type(exc).__name__ in str(translated)


def test_other_botocore_errors_are_permanent_and_codes_are_read_from_client_errors_only() -> None:
    assert type(translate(NoCredentialsError(), "Publish")) is PermanentAwsError
    assert error_code(client_error("AccessDenied")) == "AccessDenied"
    assert error_code(NoCredentialsError()) is None


# ----- the one chunk helper --------------------------------------------------------------------


def test_chunked_keeps_order_and_size() -> None:
    assert list(chunked(list(range(7)), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunked([], 50)) == []
    with pytest.raises(ValueError, match="at least 1"):
        list(chunked([1], 0))


# ----- the handler plumbing --------------------------------------------------------------------


@dataclass
class Sink:
    added: list[tuple[str, float]] = field(default_factory=list)

    def add_metric(self, name: str, unit: Any, value: float) -> None:
        self.added.append((name, value))


@dataclass
class Result:
    outcome: str
    reason: str = "why"

    def metrics(self) -> list[Metric]:
        return [Metric("Things", "Count", 2)]

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome}


SETTINGS = load_settings({})
CLIENTS = Clients(lambda service, *, config: None)


def run(parse: Any, decide: Any) -> tuple[Sink, Any]:
    sink = Sink()
    try:
        return sink, handle({"id": "e"}, parse, decide, sink, settings=SETTINGS, clients=CLIENTS)
    except Exception as exc:
        return sink, exc


def test_the_result_metrics_are_emitted_and_the_injected_settings_and_clients_reach_the_domain() -> None:
    seen: list[Any] = []

    def decide(parsed: Any, settings: Any, clients: Any) -> Result:
        seen.extend([parsed, settings, clients])
        return Result("changed")

    sink, result = run(lambda event: event["id"], decide)
    assert result == Result("changed")
    assert seen == ["e", SETTINGS, CLIENTS]
    assert sink.added == [("Things", 2)]


def test_a_malformed_event_counts_events_rejected_and_never_reaches_the_domain() -> None:
    def parse(event: Any) -> Any:
        raise MalformedEvent("detail.x: field required")

    sink, raised = run(parse, lambda *_: pytest.fail("the domain ran"))
    assert isinstance(raised, MalformedEvent)
    assert sink.added == [("EventsRejected", 1)]


def test_an_unexpected_failure_counts_failures_and_is_raised() -> None:
    def decide(*_: Any) -> Result:
        raise PermanentAwsError("DescribeThings: AccessDenied")

    sink, raised = run(lambda event: event, decide)
    assert isinstance(raised, PermanentAwsError)
    assert sink.added == [("Failures", 1)]


def test_a_failed_result_emits_its_metrics_before_it_is_raised() -> None:
    def decide(*_: Any) -> Result:
        raise FailedResult(Result("failed", "2 failure(s)"))

    sink, raised = run(lambda event: event, decide)
    assert isinstance(raised, FailedResult)
    assert str(raised) == "2 failure(s)"
    assert sink.added == [("Things", 2)]


def test_a_rejected_result_counts_events_rejected_after_its_own_metrics_and_raises() -> None:
    sink, raised = run(lambda event: event, lambda *_: Result("rejected", "detail.EC2InstanceId: bad"))
    assert isinstance(raised, MalformedEvent)
    assert str(raised) == "detail.EC2InstanceId: bad"
    assert sink.added == [("Things", 2), ("EventsRejected", 1)]


class Unreachable:
    """A stub client whose every call fails without an answer."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def __getattr__(self, name: str) -> Any:
        def call(**_: Any) -> Any:
            raise self.exc

        return call


@pytest.mark.parametrize(
    "exc", [ReadTimeoutError(endpoint_url="https://autoscaling"), ResponseParserError("garbled")]
)
def test_adapters_translate_what_no_answer_raises(exc: Exception) -> None:
    # Given Auto Scaling unreachable after botocore's retries / When an adapter calls it
    from proxymx.launch.autoscaling import AutoScaling

    adapter = AutoScaling(Unreachable(exc))  # type: ignore[arg-type]
    # Then the caller gets the domain's transient error, naming the call
    with pytest.raises(TransientAwsError, match="RecordLifecycleActionHeartbeat"):
        adapter.record_heartbeat("mx", "proxymx-postfix-launch", "i-0123456789abcdef0")
    with pytest.raises(TransientAwsError, match="DescribeLifecycleHooks"):
        adapter.launch_hook_names("mx", ["proxymx-postfix-launch"])
