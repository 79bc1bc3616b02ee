"""Translate botocore ``ClientError`` codes from the ELB APIs into domain outcomes, once; and the
base both ELB adapters share (:class:`Adapter`).

Throttling and 5xx have already been retried by botocore (standard mode, see proxymx.aws);
what reaches us here is either transient (worth an async retry) or permanent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from proxymx import aws
from proxymx.errors import NotReadyYet, PermanentAwsError, ProxymxError, TransientAwsError

T = TypeVar("T")
ClientT = TypeVar("ClientT")

# A load balancer or target group may not be readable right after its creation event.
NOT_FOUND_CODES = frozenset(
    {"LoadBalancerNotFound", "AccessPointNotFound", "TargetGroupNotFound", "AccessPointNotFoundException"}
)
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalError",
    }
)
# 1 + 2 + 4 + 8 = 15 s of waiting at most: well inside the function's 60 s timeout, and long
# enough for ELB's read-after-create lag, which is seconds.
DEFAULT_BACKOFF: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)


def error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def translate(exc: Exception, what: str) -> ProxymxError:
    """The domain exception for a ClientError (``raise translate(exc, ...) from exc``)."""
    code = error_code(exc) or type(exc).__name__
    if code in NOT_FOUND_CODES:
        return NotReadyYet(f"{what}: {code}")
    if code in TRANSIENT_CODES:
        return TransientAwsError(f"{what}: {code}: {exc}")
    return PermanentAwsError(f"{what}: {code}: {exc}")


def with_not_found_retry(
    call: Callable[[], T],
    what: str,
    *,
    backoff: Sequence[float] = DEFAULT_BACKOFF,
    sleep: Callable[[float], Any] = time.sleep,
) -> T:
    """Run ``call``; on a not-found error wait and retry along ``backoff``, then NotReadyYet."""
    from botocore.exceptions import ClientError

    for delay in (*backoff, None):
        try:
            return call()
        except ClientError as exc:
            code = error_code(exc)
            if code not in NOT_FOUND_CODES:
                raise translate(exc, what) from exc
            if delay is None:
                raise NotReadyYet(
                    f"{what}: still {code} after {len(backoff) + 1} attempts over {sum(backoff):g}s "
                    "(not readable yet, or deleted)"
                ) from exc
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


class Adapter(Generic[ClientT]):
    """What both load balancer adapters share: an optional injected client, created lazily
    through :func:`proxymx.aws.client` otherwise, and the backoff for not-yet-readable reads."""

    service: ClassVar[str]

    def __init__(
        self,
        client: ClientT | None = None,
        *,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self._client = client
        self._backoff = backoff
        self._sleep = sleep

    @property
    def client(self) -> ClientT:
        if self._client is None:
            self._client = aws.client(self.service)
        return self._client

    def _read_with_retry(self, call: Callable[[], T], what: str) -> T:
        return with_not_found_retry(call, what, backoff=self._backoff, sleep=self._sleep)
