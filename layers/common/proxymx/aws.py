"""The one place that creates boto3 clients: :class:`Clients`.

One lazily built client per service, all from ONE botocore configuration
(:func:`botocore_config`). Nothing is created at import time (so the embedded AWS and stubs
always see every client, and a handler's cold start does not pay for boto3 until its first
call); a Lambda handler uses the process-wide :func:`default_clients`, reused by warm
invocations. Tests and the command line pass their own ``Clients(...)``: a boto3 session, a
factory, or clients set as attributes (``clients.elb = stub``).

Client observers (:func:`add_client_observer`) see every client a :class:`Clients` creates from
then on: the command line records every call with one (``proxymx invoke --json``), the embedded
AWS attaches its extension with another, without touching adapter code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from proxymx import __version__
from proxymx.budget import CallBudget, call_budget
from proxymx.config import settings

if TYPE_CHECKING:
    from boto3.session import Session
    from botocore.config import Config
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_elb import ElasticLoadBalancingClient
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_ssm import SSMClient

ClientObserver = Callable[[Any], None]

USER_AGENT_EXTRA = f"proxymx/{__version__}"
# Throttling, 5xx and connection errors are retried by botocore's "standard" mode with bounded
# exponential backoff, within the function's call budget (proxymx/budget.py: one call's worst case
# fits in half the function's Timeout); what outlives it reaches the adapter, which translates it
# once (proxymx.errors.translate).

_observers: list[ClientObserver] = []


class ClientFactory(Protocol):
    """Makes the client of one service (a ``boto3.Session`` has this shape as ``.client``)."""

    def __call__(self, service: str, *, config: Config) -> Any: ...


def botocore_config(budget: CallBudget | None = None) -> Config:
    """The configuration of every client proxymx creates: the function's call budget."""
    from botocore.config import Config

    if budget is None:
        budget = call_budget(settings().function_timeout_seconds)
    return Config(
        # total_max_attempts counts the first attempt; Config's "max_attempts" counts only the
        # retries (measured: max_attempts=2 made 3 requests; tests/integration/test_call_budget.py).
        retries={"mode": "standard", "total_max_attempts": budget.attempts},
        user_agent_extra=USER_AGENT_EXTRA,
        connect_timeout=budget.connect_timeout,
        read_timeout=budget.read_timeout,
    )


def add_client_observer(observer: ClientObserver) -> None:
    """Call ``observer(client)`` for every client any :class:`Clients` creates from now on."""
    _observers.append(observer)


def remove_client_observer(observer: ClientObserver) -> None:
    if observer in _observers:
        _observers.remove(observer)


class Clients:
    """One boto3 client per service, built at first use and kept.

    ``source``: a boto3 ``Session`` (its ``client``), a :class:`ClientFactory`, or None for the
    default session (credentials and region from the environment, as in Lambda).
    ``observers`` see the clients of this instance only (the global ones see all).
    """

    def __init__(
        self,
        source: Session | ClientFactory | None = None,
        *,
        region: str | None = None,
        observers: Sequence[ClientObserver] = (),
    ) -> None:
        self._source = source
        self._region = region
        self._observers = tuple(observers)
        self._made: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._made:
            created = self._create(service)
            for observer in (*_observers, *self._observers):
                observer(created)
            self._made[service] = created
        return self._made[service]

    def _create(self, service: str) -> Any:
        config = botocore_config()
        if self._source is None:
            import boto3

            return boto3.client(service, region_name=self._region, config=config)  # type: ignore[call-overload]
        if callable(self._source):
            return self._source(service, config=config)
        return self._source.client(service, region_name=self._region, config=config)  # type: ignore[call-overload]

    # Typed accessors; each may be set (a stub, a client made elsewhere).

    @property
    def elb(self) -> ElasticLoadBalancingClient:
        return self.client("elb")  # type: ignore[no-any-return]

    @elb.setter
    def elb(self, value: ElasticLoadBalancingClient) -> None:
        self._made["elb"] = value

    @property
    def elbv2(self) -> ElasticLoadBalancingv2Client:
        return self.client("elbv2")  # type: ignore[no-any-return]

    @elbv2.setter
    def elbv2(self, value: ElasticLoadBalancingv2Client) -> None:
        self._made["elbv2"] = value

    @property
    def autoscaling(self) -> AutoScalingClient:
        return self.client("autoscaling")  # type: ignore[no-any-return]

    @autoscaling.setter
    def autoscaling(self, value: AutoScalingClient) -> None:
        self._made["autoscaling"] = value

    @property
    def ssm(self) -> SSMClient:
        return self.client("ssm")  # type: ignore[no-any-return]

    @ssm.setter
    def ssm(self, value: SSMClient) -> None:
        self._made["ssm"] = value

    @property
    def ec2(self) -> EC2Client:
        return self.client("ec2")  # type: ignore[no-any-return]

    @ec2.setter
    def ec2(self, value: EC2Client) -> None:
        self._made["ec2"] = value

    @property
    def sns(self) -> SNSClient:
        return self.client("sns")  # type: ignore[no-any-return]

    @sns.setter
    def sns(self, value: SNSClient) -> None:
        self._made["sns"] = value

    @property
    def dynamodb(self) -> DynamoDBClient:
        return self.client("dynamodb")  # type: ignore[no-any-return]

    @dynamodb.setter
    def dynamodb(self, value: DynamoDBClient) -> None:
        self._made["dynamodb"] = value


_default: list[Clients] = []


def default_clients() -> Clients:
    """The process-wide clients of a Lambda handler (created once, reused while warm)."""
    if not _default:
        _default.append(Clients())
    return _default[0]
