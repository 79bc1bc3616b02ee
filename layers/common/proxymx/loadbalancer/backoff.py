"""What both ELB adapters share: their client, and the bounded backoff for a load balancer or
target group that is not readable yet right after its creation event (``LoadBalancerNotFound``,
``TargetGroupNotFound``). Every other error is translated at once by
:func:`proxymx.errors.translate`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from proxymx.errors import NOT_FOUND_CODES, NotReadyYet, aws_errors, error_code, translate

T = TypeVar("T")
ClientT = TypeVar("ClientT")

# 1 + 2 + 4 + 8 = 15 s of waiting at most: well inside the function's 60 s timeout, and long
# enough for ELB's read-after-create lag, which is seconds.
DEFAULT_BACKOFF: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)


def with_not_found_retry(
    call: Callable[[], T],
    what: str,
    *,
    backoff: Sequence[float] = DEFAULT_BACKOFF,
    sleep: Callable[[float], Any] = time.sleep,
) -> T:
    """Run ``call``; on a not-found error wait and retry along ``backoff``, then NotReadyYet."""
    for delay in (*backoff, None):
        try:
            return call()
        except aws_errors() as exc:
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


class ElbAdapter(Generic[ClientT]):
    """An ELB adapter: its client (from :class:`proxymx.aws.Clients`), and the backoff of its
    reads right after a creation event (the sweep passes a shorter one: a listed load balancer
    that is not readable was deleted meanwhile)."""

    def __init__(
        self,
        client: ClientT,
        *,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self.client = client
        self._backoff = backoff
        self._sleep = sleep

    def _read_with_retry(self, call: Callable[[], T], what: str) -> T:
        return with_not_found_retry(call, what, backoff=self._backoff, sleep=self._sleep)
