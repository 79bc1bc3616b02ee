"""The ELB adapters translate a network-level botocore error (no usable answer at all, after
botocore's own retries) through the one translator, :func:`proxymx.errors.translate`, like the
launch adapters do (issue 9, finding 2): EnableProxyProtocol raises ``TransientAwsError`` (Lambda's
asynchronous retry, then the DLQ), never a raw botocore exception, and writes nothing after the
failed call.

One case per adapter (``loadbalancer/classic.py``, ``nlb.py``, ``targets.py``), per call it makes
on the way, per fault. ``loadbalancer/nlbheader.py`` makes no AWS call (pure decisions on the
attributes ``nlb.py`` read): nothing to inject there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from botocore.parsers import ResponseParserError
from proxymx.aws import Clients
from proxymx.config import load_settings
from proxymx.errors import NotReadyYet, TransientAwsError
from proxymx.loadbalancer.service import enable_proxy_protocol
from proxymx.models.cloudtrail import parse_elb_event
from proxymx_tools.recorder import CallRecorder
from proxymx_tools.seed import seed_world
from support import load_event

NETWORK_FAULTS: dict[str, Callable[[], Exception]] = {
    "EndpointConnectionError": lambda: EndpointConnectionError(endpoint_url="https://elb.example"),
    "ConnectTimeoutError": lambda: ConnectTimeoutError(endpoint_url="https://elb.example"),
    "ReadTimeoutError": lambda: ReadTimeoutError(endpoint_url="https://elb.example"),
    "ResponseParserError": lambda: ResponseParserError("Unable to parse response (no XML)"),
}
SETTINGS = load_settings({"SELF_ROLE_ARNS": "arn:aws:iam::123456789012:role/proxymx-EnableProxyProtocol"})

# (adapter, sample event, client, API operation): every call each adapter makes for that event
# up to and including its write.
CALLS = [
    ("classic", "elb-create-smtp", "elb", "DescribeLoadBalancers"),
    ("classic", "elb-create-smtp", "elb", "DescribeTags"),
    ("classic", "elb-drift-backend-detached", "elb", "DescribeLoadBalancerPolicies"),
    ("classic", "elb-create-smtp", "elb", "CreateLoadBalancerPolicy"),
    ("classic", "elb-create-smtp", "elb", "SetLoadBalancerPoliciesForBackendServer"),
    ("nlb", "nlb-create-target-group", "elbv2", "DescribeTargetGroups"),
    ("nlb", "nlb-create-listener", "elbv2", "DescribeListeners"),
    ("nlb", "nlb-create-target-group", "elbv2", "DescribeTags"),
    ("nlb", "nlb-create-target-group", "elbv2", "DescribeTargetGroupAttributes"),
    ("nlb", "nlb-create-target-group", "elbv2", "ModifyTargetGroupAttributes"),
    ("nlb", "nlb-create", "elbv2", "DescribeLoadBalancers"),
    ("targets", "nlb-create-target-group", "elbv2", "DescribeTargetHealth"),
    ("targets", "elb-create-smtp", "autoscaling", "DescribeAutoScalingGroups"),
    ("targets", "elb-create-listeners-unready-fleet", "ec2", "DescribeInstances"),
]
CASES = [(*call, fault) for call in CALLS for fault in NETWORK_FAULTS]


def inject(operation: str, error: Exception, seen: list[str]) -> Callable[[Any], None]:
    """A client observer: ``operation`` raises ``error`` before any answer reaches botocore."""

    def observe(client: Any) -> None:
        def before_call(model: Any, **_: Any) -> None:
            seen.append(model.name)
            raise error

        client.meta.events.register_first(f"before-call.*.{operation}", before_call)

    return observe


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[3]}-{c[4]}")
def test_a_network_error_in_an_elb_adapter_is_transient_not_raw_botocore(
    aws: Any, calls: CallRecorder, case: tuple[str, str, str, str, str]
) -> None:
    # Given the world the sample event presumes, and one network fault on one of the calls
    _adapter, sample, _client, operation, fault = case
    event = seed_world(load_event(sample))
    seen: list[str] = []
    clients = Clients(observers=[inject(operation, NETWORK_FAULTS[fault](), seen)])
    naps: list[float] = []
    # When EnableProxyProtocol handles the event
    with pytest.raises(TransientAwsError) as raised:
        enable_proxy_protocol(parse_elb_event(event), SETTINGS, clients, sleep=naps.append)
    # Then the fault reached the adapter (the call was made) and came out translated: a
    # TransientAwsError naming the fault, from the botocore exception, not the botocore exception
    assert operation in seen
    assert not isinstance(raised.value, NotReadyYet), "a network error is no not-found backoff"
    assert fault in str(raised.value)
    assert type(raised.value.__cause__).__name__ == fault
    # And no backoff was spent on it, and nothing was written after the failed call
    assert naps == []
    failed_at = next(i for i, c in enumerate(calls.calls) if _api_name(c.operation) == operation)
    assert [c.operation for c in calls.calls[failed_at + 1 :] if not c.is_read] == []


def _api_name(operation: str) -> str:
    return "".join(part.capitalize() for part in operation.split("_"))
