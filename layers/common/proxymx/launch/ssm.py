"""SSM adapter (the only SSM boto3 code): agent registration, SendCommand, GetCommandInvocation.

Every ``ClientError`` is translated here, once, into a domain outcome or exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from proxymx import aws
from proxymx.errors import PermanentAwsError, TransientAwsError
from proxymx.launch.awserrors import call_errors, error_code, translate

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

# SendCommand accepts at most 50 InstanceIds (botocore model: InstanceIds max 50), and so does
# one DescribeInstanceInformation "InstanceIds" filter page in practice.
MAX_INSTANCES_PER_COMMAND = 50


def chunked(items: Sequence[str], size: int = MAX_INSTANCES_PER_COMMAND) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _client(client: SSMClient | None) -> SSMClient:
    return client if client is not None else aws.client("ssm")


def online_instances(instance_ids: Iterable[str], *, client: SSMClient | None = None) -> set[str]:
    """The instances whose SSM agent is registered and ``Online`` (others: not yet, or gone)."""
    ids = sorted(set(instance_ids))
    ssm = _client(client)
    online: set[str] = set()
    for chunk in chunked(ids):
        kwargs: dict[str, Any] = {"Filters": [{"Key": "InstanceIds", "Values": chunk}], "MaxResults": 50}
        while True:
            try:
                page = ssm.describe_instance_information(**kwargs)
            except call_errors() as exc:
                if error_code(exc) == "InvalidInstanceId":
                    # Raised when none of the ids is known to SSM yet: nobody is Online.
                    break
                raise translate(exc, "DescribeInstanceInformation") from exc
            online.update(
                info["InstanceId"]
                for info in page.get("InstanceInformationList", [])
                if info.get("PingStatus") == "Online" and "InstanceId" in info
            )
            token = page.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
    return online


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


def send_command(
    instance_ids: Sequence[str],
    *,
    document_name: str,
    parameters: Mapping[str, str],
    comment: str,
    timeout_seconds: int,
    log_group: str = "",
    client: SSMClient | None = None,
) -> str:
    """Send our document to at most 50 instances; the command id."""
    ssm = _client(client)
    cloudwatch: dict[str, Any] = {"CloudWatchOutputEnabled": True}
    if log_group:
        cloudwatch["CloudWatchLogGroupName"] = log_group
    request: dict[str, Any] = {
        "InstanceIds": list(instance_ids),
        "DocumentName": document_name,
        "Parameters": {key: [value] for key, value in parameters.items()},
        "Comment": comment,
        "TimeoutSeconds": timeout_seconds,
        "CloudWatchOutputConfig": cloudwatch,
        # All of the batch at once, and one instance's failure must not cancel the others.
        "MaxConcurrency": "100%",
        "MaxErrors": "100%",
    }
    validate_request(ssm, "SendCommand", request)
    try:
        response = ssm.send_command(**request)
    except call_errors() as exc:
        if error_code(exc) == "InvalidInstanceId":
            raise InstancesNotReady(f"SendCommand: InvalidInstanceId ({exc})") from exc
        raise translate(exc, "SendCommand") from exc
    return response["Command"]["CommandId"]


@dataclass(frozen=True)
class Invocation:
    command_id: str
    instance_id: str
    document_name: str
    status: str
    status_details: str
    response_code: int
    stdout: str
    stderr: str
    comment: str
    started: datetime | None = None
    ended: datetime | None = None


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def get_invocation(
    command_id: str, instance_id: str, *, client: SSMClient | None = None
) -> Invocation | None:
    """The invocation, or None while SSM does not show it yet (``InvocationDoesNotExist``)."""
    ssm = _client(client)
    try:
        data: Mapping[str, Any] = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
    except call_errors() as exc:
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
