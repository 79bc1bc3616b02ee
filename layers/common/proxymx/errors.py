"""Domain exceptions, and the ONE translator from what boto3 raises into them.

Adapters catch :func:`aws_errors` around every call and ``raise translate(exc, doing) from exc``
(after handling the codes that are a domain outcome for that call, such as
``DuplicatePolicyName`` on create); handlers decide retry versus give up.
"""

from __future__ import annotations


class ProxymxError(Exception):
    """Base class of every proxymx error."""


class MalformedEvent(ProxymxError):
    """The event does not have the shape we need. Permanent: retrying cannot help."""


class TransientAwsError(ProxymxError):
    """Worth retrying later (eventual consistency, throttling or a network error that outlived
    botocore's retries)."""


class PermanentAwsError(ProxymxError):
    """Retrying will not help (access denied, invalid parameter, ...): fail loudly."""


class NotReadyYet(TransientAwsError):
    """The resource exists but is not readable/ready yet (LoadBalancerNotFound right after create,
    an SSM agent not Online yet)."""


class VerificationFailed(ProxymxError):
    """A change was applied but reading it back shows it did not take."""


# A load balancer or target group may not be readable right after its creation event.
NOT_FOUND_CODES = frozenset(
    {"LoadBalancerNotFound", "AccessPointNotFound", "TargetGroupNotFound", "AccessPointNotFoundException"}
)
# Throttling and server-side failures left over after botocore's "standard" retries (proxymx.aws):
# worth a later retry (Lambda's async retry, SQS redelivery, the next sweep), not a verdict.
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyUpdates",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalError",
        "InternalServerError",
    }
)


def aws_errors() -> tuple[type[Exception], ...]:
    """What a boto3 call raises: ``ClientError`` (the service answered with an error),
    ``BotoCoreError`` (no answer: connection, timeout, credentials...) and ``ResponseParserError``
    (an answer botocore could not parse; not a BotoCoreError). Used as ``except aws_errors()``:
    the expression runs only when an exception is being matched, so botocore is not imported
    before a client exists."""
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError

    return (ClientError, BotoCoreError, ResponseParserError)


def _network_errors() -> tuple[type[Exception], ...]:
    """Raised when no usable answer came back at all, after botocore's own retries."""
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )
    from botocore.parsers import ResponseParserError

    return (
        EndpointConnectionError,
        ConnectTimeoutError,
        ReadTimeoutError,
        ConnectionClosedError,
        ResponseParserError,
    )


def error_code(exc: BaseException) -> str | None:
    """The service's error code of a ``ClientError`` (``AccessDenied``), None for anything else."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def translate(exc: BaseException, doing: str) -> ProxymxError:
    """The domain exception for what boto3 raised while ``doing`` (``raise translate(...) from exc``)."""
    code = error_code(exc)
    if code in NOT_FOUND_CODES:
        return NotReadyYet(f"{doing}: {code}")
    if code in TRANSIENT_CODES:
        return TransientAwsError(f"{doing}: {code}: {exc}")
    if code is None and isinstance(exc, _network_errors()):
        return TransientAwsError(f"{doing}: {type(exc).__name__}: {exc}")
    return PermanentAwsError(f"{doing}: {code or type(exc).__name__}: {exc}")
