"""Partial batch (issue 9, finding 2): every record's failure stays its own. A network-level
botocore error (no service answer at all) fails the records of that call, never the whole SQS
batch; records already settled are not redelivered."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from botocore.parsers import ResponseParserError
from proxymx.aws import Clients
from proxymx.config import Settings
from proxymx_tools.embedded import EmbeddedAws, to_sqs_batch
from proxymx_tools.recorder import CallRecorder
from support import GROUP, HOOK, lambda_context, load_app

NETWORK_FAULTS: dict[str, Callable[[], Exception]] = {
    "connection error": lambda: EndpointConnectionError(endpoint_url="https://ssm.us-east-1.amazonaws.com"),
    "read timeout": lambda: ReadTimeoutError(endpoint_url="https://ssm.us-east-1.amazonaws.com"),
    "unparsable answer": lambda: ResponseParserError("Unable to parse response (not XML)"),
}
# Every call ConfigureInstance makes for a launch, in order.
OPERATIONS = {
    "autoscaling": "DescribeAutoScalingInstances",
    "ssm": "DescribeInstanceInformation",
    "dynamodb": "PutItem",
}


@pytest.fixture
def app(powertools: None) -> ModuleType:
    return load_app("configure_instance")


Observers = list[Callable[[Any], None]]


@pytest.fixture
def observers() -> Observers:
    return []


@pytest.fixture
def fault(observers: Observers) -> Iterator[Callable[[str, str, Exception], None]]:
    """Make one operation of one service raise ``error`` from now on (no answer reaches botocore)."""

    def inject(service: str, operation: str, error: Exception) -> None:
        def observe(client: Any) -> None:
            if client.meta.service_model.service_name != service:
                return

            def before_call(**_: Any) -> None:
                raise error

            # First: the embedded AWS answers some operations itself in its own before-call.
            client.meta.events.register_first(f"before-call.{service}.{operation}", before_call)

        observers.append(observe)

    yield inject


Invoke = Callable[[dict[str, Any]], list[str]]


@pytest.fixture
def invoke(app: ModuleType, settings: Settings, observers: Observers) -> Invoke:
    """The handler as Lambda runs it, on clients that see the injected faults."""

    def run(batch: dict[str, Any]) -> list[str]:
        clients = Clients(observers=observers)
        response = app.lambda_handler(batch, lambda_context(), settings=settings, clients=clients)
        return [item["itemIdentifier"] for item in response["batchItemFailures"]]

    return run


CASES = [
    (name, service, operation)
    for name in NETWORK_FAULTS
    for service, operation in [*OPERATIONS.items(), ("ssm", "SendCommand")]
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case[0]}-{case[2]}")
def test_a_network_error_fails_its_records_not_the_batch(
    world: EmbeddedAws,
    calls: CallRecorder,
    invoke: Invoke,
    fault: Callable[[str, str, Exception], None],
    case: tuple[str, str, str],
) -> None:
    # Given two launches and a malformed record in one batch, and a network fault on one call
    events = world.launch.launch_into_wait(GROUP, HOOK, 2)
    batch = to_sqs_batch(events)
    batch["Records"].append({**batch["Records"][0], "messageId": "malformed", "body": "{}"})
    name, service, op = case
    fault(service, op, NETWORK_FAULTS[name]())
    # When the batch is handled
    failures = invoke(batch)
    # Then the handler answers (no exception: SQS would redeliver everything), and exactly the
    # records touched by the failed call plus the malformed one come back
    assert sorted(failures) == sorted(r["messageId"] for r in batch["Records"])
    # And nothing was sent past the failed call (a failed SendCommand was tried once)
    assert len(calls.of("send_command")) == (1 if op == "SendCommand" else 0)


def test_a_lifecycle_time_without_offset_is_that_records_own_rejection(
    world: EmbeddedAws, calls: CallRecorder, invoke: Invoke
) -> None:
    # Given a batch where one event's time has no UTC offset (a hand-made event) and one is normal
    naive, normal = world.launch.launch_into_wait(GROUP, HOOK, 2)
    naive = json.loads(json.dumps(naive))
    naive["time"] = naive["time"].removesuffix("Z")
    assert not naive["time"].endswith("Z")
    batch = to_sqs_batch([naive, normal])
    # When the batch is handled
    failures = invoke(batch)
    # Then the naive one is rejected alone (validation refuses a time without offset) and comes
    # back, while the normal one is configured: one record's fault sinks nothing else
    assert failures == [batch["Records"][0]["messageId"]]
    (sent,) = calls.of("send_command")
    assert sent["InstanceIds"] == [normal["detail"]["EC2InstanceId"]]
