"""The result vocabulary every flow shares.

Every domain entry point returns a result with the same four members, so the handlers (and
``proxymx invoke``) treat them alike:

- ``outcome``: ``changed`` (something was written, or in a dry run would be), ``compliant``
  (already right, or nothing of ours to do), ``ignored`` (not ours: out of scope, a foreign
  event), ``rejected`` (malformed input: the handler counts ``EventsRejected`` and raises
  :class:`~proxymx.errors.MalformedEvent`), ``failed`` (the flow ran to its end and something
  failed: it raises :class:`FailedResult` after the result is complete);
- ``reason``: one line for a human;
- ``metrics()``: the EMF metrics of this result (:class:`Metric`);
- ``to_dict()``: the JSON answer (and what the log line carries).
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from proxymx.errors import ProxymxError
from proxymx.frozen import frozen

Outcome = Literal["changed", "compliant", "ignored", "rejected", "failed"]


@frozen
class Metric:
    name: str
    unit: str  # a CloudWatch unit: "Count", "Seconds"
    value: float


def count(name: str, value: float = 1) -> Metric:
    return Metric(name, "Count", value)


class FlowResult(Protocol):
    @property
    def outcome(self) -> str: ...

    @property
    def reason(self) -> str: ...

    def metrics(self) -> list[Metric]: ...

    def to_dict(self) -> dict[str, Any]: ...


class FailedResult(ProxymxError):
    """A flow that ran to its end with failures: raised with the complete result, so that the
    handler emits its metrics before the invocation fails (and the errors alarm fires)."""

    def __init__(self, result: FlowResult, message: str | None = None) -> None:
        super().__init__(message or result.reason)
        self.result = result
