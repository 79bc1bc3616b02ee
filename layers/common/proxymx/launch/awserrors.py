"""Translate botocore ``ClientError`` codes into proxymx's domain exceptions (shared by the adapters)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxymx.errors import PermanentAwsError, TransientAwsError

# Left over after botocore's own "standard" retries: worth a later retry, not a failure.
THROTTLING = frozenset(
    {"ThrottlingException", "Throttling", "TooManyUpdates", "RequestLimitExceeded", "InternalServerError"}
)


def call_errors() -> tuple[type[Exception], ...]:
    """What one AWS call can raise that the adapters translate: the service's answer
    (``ClientError``) and the network's (issue 9, finding 2: a connection error, a read timeout or
    an unparsable answer used to escape every adapter and fail the whole SQS batch). Imported at
    call time: botocore stays out of the cold start until the first call."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError, IncompleteReadError
    from botocore.parsers import ResponseParserError

    return (ClientError, ConnectionError, HTTPClientError, IncompleteReadError, ResponseParserError)


def network_error(exc: Exception) -> bool:
    """A failure of the connection or of the answer, not of the request: worth a later retry."""
    return not error_code(exc) and isinstance(exc, call_errors())


def error_code(exc: Exception) -> str:
    response: Mapping[str, Any] = getattr(exc, "response", {}) or {}
    return str(response.get("Error", {}).get("Code", ""))


def translate(exc: Exception, doing: str) -> Exception:
    code = error_code(exc)
    if code in THROTTLING:
        return TransientAwsError(f"{doing}: {code} ({exc})")
    if network_error(exc):
        return TransientAwsError(f"{doing}: {type(exc).__name__} ({exc})")
    return PermanentAwsError(f"{doing}: {code or type(exc).__name__} ({exc})")
