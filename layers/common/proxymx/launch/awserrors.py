"""Translate botocore ``ClientError`` codes into proxymx's domain exceptions (shared by the adapters)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxymx.errors import PermanentAwsError, TransientAwsError

# Left over after botocore's own "standard" retries: worth a later retry, not a failure.
THROTTLING = frozenset(
    {"ThrottlingException", "Throttling", "TooManyUpdates", "RequestLimitExceeded", "InternalServerError"}
)


def error_code(exc: Exception) -> str:
    response: Mapping[str, Any] = getattr(exc, "response", {}) or {}
    return str(response.get("Error", {}).get("Code", ""))


def translate(exc: Exception, doing: str) -> Exception:
    code = error_code(exc)
    if code in THROTTLING:
        return TransientAwsError(f"{doing}: {code} ({exc})")
    return PermanentAwsError(f"{doing}: {code or type(exc).__name__} ({exc})")
