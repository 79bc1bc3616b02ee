"""Record every AWS call the handlers make, in order, as boto3 spells it.

A client observer (proxymx.aws.add_client_observer) hooks botocore's ``provide-client-params``
event on every client proxymx creates: it fires once per API call (paginated pages included)
with the parameters as the caller passed them, before validation and before any network or
moto. ``service`` is the boto3 client name (``service_model.service_name``: ``elb``,
``elbv2``, ``ssm``...), ``operation`` the boto3 method name (``xform_name`` of the operation),
``iam_action`` what IAM calls it (``elasticloadbalancing:CreateLoadBalancerPolicy``: the service's
signing name and the API's operation name), for the tests that hold a role to what it calls.

The one recorder of AWS calls: ``proxymx invoke --json``, the demo and the tests use it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from proxymx import aws

READ_PREFIXES = ("describe_", "get_", "list_", "test_")


@dataclass(frozen=True)
class AwsCall:
    service: str
    operation: str
    params: dict[str, Any]
    iam_action: str = ""

    @property
    def is_read(self) -> bool:
        return self.operation.startswith(READ_PREFIXES)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` shape of a call: service, operation, params."""
        return {"service": self.service, "operation": self.operation, "params": self.params}


def _json_safe(value: Any) -> dict[str, Any]:
    # Parameters may hold datetimes or bytes: keep the JSON report printable.
    data: dict[str, Any] = json.loads(json.dumps(value, default=str))
    return data


@dataclass
class CallRecorder:
    """``with CallRecorder() as calls:`` records the calls of every client created inside."""

    calls: list[AwsCall] = field(default_factory=list)

    def observe(self, client: Any) -> None:
        client.meta.events.register("provide-client-params", self._on_params)

    def _on_params(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        from botocore import xform_name

        self.calls.append(
            AwsCall(
                service=model.service_model.service_name,
                operation=xform_name(model.name),
                params=_json_safe(params),
                iam_action=f"{model.service_model.signing_name}:{model.name}",
            )
        )
        # Returning None keeps botocore's parameters as they are.

    @property
    def reads(self) -> list[AwsCall]:
        return [call for call in self.calls if call.is_read]

    @property
    def writes(self) -> list[AwsCall]:
        return [call for call in self.calls if not call.is_read]

    def of(self, operation: str) -> list[dict[str, Any]]:
        """The parameters of every call of one operation (boto3's name: ``send_command``)."""
        return [call.params for call in self.calls if call.operation == operation]

    @property
    def iam_actions(self) -> set[str]:
        return {call.iam_action for call in self.calls}

    def __enter__(self) -> CallRecorder:
        aws.add_client_observer(self.observe)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        aws.remove_client_observer(self.observe)
