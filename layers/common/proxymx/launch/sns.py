"""SNS adapter (the only SNS boto3 code): tell the operator that an instance was not configured."""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxymx import aws
from proxymx.launch.awserrors import call_errors, translate

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

# SNS subjects: ASCII, no newlines, at most 100 characters.
MAX_SUBJECT = 100


def publish_failure(topic_arn: str, subject: str, message: str, *, client: SNSClient | None = None) -> str:
    """Publish one failure notice; the message id."""
    sns: SNSClient = client if client is not None else aws.client("sns")
    clean_subject = "".join(ch if 32 <= ord(ch) < 127 else " " for ch in subject)[:MAX_SUBJECT]
    try:
        response = sns.publish(TopicArn=topic_arn, Subject=clean_subject, Message=message)
    except call_errors() as exc:
        raise translate(exc, "Publish") from exc
    return response["MessageId"]
