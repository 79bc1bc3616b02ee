"""EC2 tags adapter (the only EC2 write): record what a summary proved on the instance itself.

The tag ``proxymx:proxy-protocol`` (grammar: :mod:`proxymx.loadbalancer.readiness`) is written
only by CheckOutcome, the flow that saw the proof, before it completes a lifecycle action. IAM
allows it only on instances carrying the fleet tag and only for this key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxymx import aws
from proxymx.launch.awserrors import translate
from proxymx.loadbalancer.readiness import READINESS_TAG_KEY

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client


def record_readiness(instance_id: str, value: str, *, client: EC2Client | None = None) -> None:
    from botocore.exceptions import ClientError

    ec2: EC2Client = client if client is not None else aws.client("ec2")
    try:
        ec2.create_tags(Resources=[instance_id], Tags=[{"Key": READINESS_TAG_KEY, "Value": value}])
    except ClientError as exc:
        raise translate(exc, f"CreateTags {READINESS_TAG_KEY} on {instance_id}") from exc
