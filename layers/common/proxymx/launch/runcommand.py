"""SSM Run Command adapter (the only SSM boto3 code of the launch flow): agent registration,
SendCommand, GetCommandInvocation. (The SSM *event* model is :mod:`proxymx.models.ssm`.)

Every error is translated here, once, into a domain outcome or exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from proxymx.batching import chunked
from proxymx.errors import PermanentAwsError, TransientAwsError, aws_errors, error_code, translate
from proxymx.launch.plan import Invocation

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

# One DescribeInstanceInformation "InstanceIds" filter takes at most 50 ids per page in practice.
INSTANCES_PER_CALL = 50


def limit_violations(value: Any, shape: Any, path: str = "") -> list[str]:
    """The maxima of the service model that ``value`` exceeds (botocore's own validation checks
    types, required members and minima, not maxima such as SendCommand's 50 InstanceIds)."""
    found: list[str] = []
    maximum = shape.metadata.get("max")
    if shape.type_name == "structure" and isinstance(value, Mapping):
        for name, member in value.items():
            if name in shape.members:
                found += limit_violations(member, shape.members[name], f"{path}.{name}" if path else name)
    elif shape.type_name == "list" and isinstance(value, list | tuple):
        if maximum is not None and len(value) > maximum:
            found.append(f"{path}: {len(value)} items, at most {maximum}")
        for index, item in enumerate(value):
            found += limit_violations(item, shape.member, f"{path}[{index}]")
    elif shape.type_name == "map" and isinstance(value, Mapping):
        for key, item in value.items():
            found += limit_violations(item, shape.value, f"{path}.{key}")
    elif shape.type_name == "string" and isinstance(value, str):
        if maximum is not None and len(value) > maximum:
            found.append(f"{path}: {len(value)} characters, at most {maximum}")
    elif (
        shape.type_name in ("integer", "long")
        and isinstance(value, int)
        and maximum is not None
        and value > maximum
    ):
        found.append(f"{path}: {value} > {maximum}")
    return found


def validate_request(client: Any, operation: str, params: Mapping[str, Any]) -> None:
    """Validate a request against botocore's service model before sending it (types, required
    members, minima and maxima)."""
    from botocore.exceptions import ParamValidationError
    from botocore.validate import validate_parameters

    shape = client.meta.service_model.operation_model(operation).input_shape
    try:
        validate_parameters(dict(params), shape)
    except ParamValidationError as exc:
        raise PermanentAwsError(f"{operation} request rejected by the service model: {exc}") from exc
    violations = limit_violations(params, shape)
    if violations:
        raise PermanentAwsError(f"{operation} request exceeds the service model: {'; '.join(violations)}")


class InstancesNotReady(TransientAwsError):
    """SendCommand refused the instances (``InvalidInstanceId``): not registered yet, or gone."""


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


class RunCommand:
    def __init__(self, client: SSMClient) -> None:
        self.client = client

    def online_instances(self, instance_ids: Iterable[str]) -> set[str]:
        """The instances whose SSM agent is registered and ``Online`` (others: not yet, or gone)."""
        online: set[str] = set()
        for chunk in chunked(sorted(set(instance_ids)), INSTANCES_PER_CALL):
            online |= self._online_among(chunk)
        return online

    def _online_among(self, ids: list[str]) -> set[str]:
        """One InstanceIds filter; narrowed by bisection when SSM refuses it.

        DescribeInstanceInformation raises ``InvalidInstanceId`` for the whole call when ANY id of
        the filter is unknown to SSM (an agent not registered yet), not only when all are. Without
        narrowing, one slow agent would hold back its 49 batch-mates until the queue's DLQ; halving
        the set finds the ready ones in about k x log2(50) calls for k late agents (issue 10).
        """
        online: set[str] = set()
        kwargs: dict[str, Any] = {
            "Filters": [{"Key": "InstanceIds", "Values": ids}],
            "MaxResults": INSTANCES_PER_CALL,
        }
        while True:
            try:
                page = self.client.describe_instance_information(**kwargs)
            except aws_errors() as exc:
                if error_code(exc) != "InvalidInstanceId":
                    raise translate(exc, "DescribeInstanceInformation") from exc
                if len(ids) == 1:
                    return set()  # this one is not registered yet
                middle = len(ids) // 2
                return self._online_among(ids[:middle]) | self._online_among(ids[middle:])
            online.update(
                info["InstanceId"]
                for info in page.get("InstanceInformationList", [])
                if info.get("PingStatus") == "Online" and "InstanceId" in info
            )
            token = page.get("NextToken")
            if not token:
                return online
            kwargs["NextToken"] = token

    def send_command(
        self,
        instance_ids: Sequence[str],
        *,
        document_name: str,
        parameters: Mapping[str, str],
        comment: str,
        timeout_seconds: int,
        log_group: str = "",
    ) -> str:
        """Send our document to at most 50 instances; the command id."""
        cloudwatch: dict[str, Any] = {"CloudWatchOutputEnabled": True}
        if log_group:
            cloudwatch["CloudWatchLogGroupName"] = log_group
        request: dict[str, Any] = {
            "InstanceIds": list(instance_ids),
            "DocumentName": document_name,
            # The document is updated in place (UpdateMethod NewVersion, template.yaml): run the
            # version the stack made the default, never a $LATEST someone created by hand.
            "DocumentVersion": "$DEFAULT",
            "Parameters": {key: [value] for key, value in parameters.items()},
            "Comment": comment,
            "TimeoutSeconds": timeout_seconds,
            "CloudWatchOutputConfig": cloudwatch,
            # All of the batch at once, and one instance's failure must not cancel the others.
            "MaxConcurrency": "100%",
            "MaxErrors": "100%",
        }
        validate_request(self.client, "SendCommand", request)
        try:
            response = self.client.send_command(**request)
        except aws_errors() as exc:
            if error_code(exc) == "InvalidInstanceId":
                raise InstancesNotReady(f"SendCommand: InvalidInstanceId ({exc})") from exc
            raise translate(exc, "SendCommand") from exc
        return response["Command"]["CommandId"]

    def get_invocation(self, command_id: str, instance_id: str) -> Invocation | None:
        """The invocation, or None while SSM does not show it yet (``InvocationDoesNotExist``)."""
        try:
            data: Mapping[str, Any] = self.client.get_command_invocation(
                CommandId=command_id, InstanceId=instance_id
            )
        except aws_errors() as exc:
            if error_code(exc) == "InvocationDoesNotExist":
                return None
            raise translate(exc, "GetCommandInvocation") from exc
        return Invocation(
            command_id=command_id,
            instance_id=instance_id,
            document_name=str(data.get("DocumentName", "")),
            status=str(data.get("Status", "")),
            status_details=str(data.get("StatusDetails", "")),
            response_code=int(data.get("ResponseCode", -1)),
            stdout=str(data.get("StandardOutputContent", "")),
            stderr=str(data.get("StandardErrorContent", "")),
            comment=str(data.get("Comment", "")),
            started=_when(data.get("ExecutionStartDateTime")),
            ended=_when(data.get("ExecutionEndDateTime")),
        )
