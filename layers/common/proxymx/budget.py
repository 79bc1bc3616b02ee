"""The retry and timeout budget of every AWS call, derived from the function's own Timeout.

Why (issue 9, finding 3): botocore's ``standard`` mode with ``max_attempts: 5`` plus 20 s read
timeouts could spend ~2 minutes on ONE call, while ConfigureInstance and CheckOutcome time out at
30 s. The Lambda timeout then killed the invocation: no partial batch response, every record of the
batch redelivered, the failure's reason lost. The rule here: the worst case of one call — every
attempt waiting out its connect and read timeouts, every backoff at its maximum — fits in HALF of
the function's timeout, which leaves the other half for the other calls of the record and for
reporting the failure (the record is then retried by its queue or the next sweep, with the reason
in the log).

botocore's standard backoff before retry ``n`` (1-based) is ``rand(0, 1) * min(2 ** (n - 1), 20)``
seconds (botocore/retries/standard.py, ExponentialBackoff); the worst case takes ``rand = 1``. A
throttled call is answered in milliseconds, so it fails within the sum of its backoffs.

The function's timeout reaches the code as ``FUNCTION_TIMEOUT_SECONDS`` (template.yaml, next to
each function's ``Timeout``; tests/unit/test_budget.py proves the two agree).
"""

from __future__ import annotations

from proxymx.frozen import frozen

# A regional AWS endpoint accepts a connection in milliseconds: a longer wait is a network fault.
MAX_CONNECT_TIMEOUT = 2.0
# No proxymx call streams: 20 s without a byte is a hung connection (botocore's default is 60).
MAX_READ_TIMEOUT = 20.0
# botocore's standard mode default is 3; more only where the function's time allows it.
MAX_ATTEMPTS = 5
MAX_BACKOFF = 20.0


@frozen
class CallBudget:
    """What one AWS call may spend: ``attempts`` in all (botocore's ``max_attempts`` counts them
    all in standard mode, the first included), each bounded by the two timeouts."""

    attempts: int
    connect_timeout: float
    read_timeout: float

    @property
    def worst_case_seconds(self) -> float:
        backoffs = sum(min(2.0 ** (retry - 1), MAX_BACKOFF) for retry in range(1, self.attempts))
        return self.attempts * (self.connect_timeout + self.read_timeout) + backoffs


def call_budget(function_timeout_seconds: float) -> CallBudget:
    """The most attempts (up to MAX_ATTEMPTS, at least one) whose worst case fits in half of the
    function's timeout, with timeouts scaled down for short functions."""
    share = function_timeout_seconds / 2
    connect = min(MAX_CONNECT_TIMEOUT, share / 4)
    read = min(MAX_READ_TIMEOUT, share / 3)
    best = CallBudget(1, connect, read)
    for attempts in range(2, MAX_ATTEMPTS + 1):
        candidate = CallBudget(attempts, connect, read)
        if candidate.worst_case_seconds > share:
            break
        best = candidate
    return best
