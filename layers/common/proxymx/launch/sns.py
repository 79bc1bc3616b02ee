"""SNS adapter (the only SNS boto3 code): tell the operator that an instance was not configured."""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxymx.errors import aws_errors, translate

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

# SNS subjects: ASCII, no newlines, at most 100 characters.
MAX_SUBJECT = 100


class Notifications:
    def __init__(self, client: SNSClient) -> None:
        self.client = client

    def publish_failure(self, topic_arn: str, subject: str, message: str) -> str:
        """Publish one failure notice; the message id."""
        clean_subject = "".join(ch if 32 <= ord(ch) < 127 else " " for ch in subject)[:MAX_SUBJECT]
        try:
            response = self.client.publish(TopicArn=topic_arn, Subject=clean_subject, Message=message)
        except aws_errors() as exc:
            raise translate(exc, "Publish") from exc
        return response["MessageId"]
