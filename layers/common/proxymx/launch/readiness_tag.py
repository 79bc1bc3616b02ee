"""EC2 tags adapter (the only EC2 write): record what a summary proved on the instance itself.

The tag ``proxymx:proxy-protocol`` (grammar: :mod:`proxymx.loadbalancer.readiness`) is written
only by CheckOutcome, the flow that saw the proof, before it completes a lifecycle action. IAM
allows it only on instances carrying the fleet tag and only for this key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxymx.errors import aws_errors, translate
from proxymx.loadbalancer.readiness import READINESS_TAG_KEY

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client


class ReadinessTags:
    def __init__(self, client: EC2Client) -> None:
        self.client = client

    def record(self, instance_id: str, value: str) -> None:
        try:
            self.client.create_tags(
                Resources=[instance_id], Tags=[{"Key": READINESS_TAG_KEY, "Value": value}]
            )
        except aws_errors() as exc:
            raise translate(exc, f"CreateTags {READINESS_TAG_KEY} on {instance_id}") from exc
