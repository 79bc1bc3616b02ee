"""The audit's report, pure: exit statuses (the pipeline gate), the summary, Markdown, the progress
bar (a terminal only). The audit itself runs against AWS in tests/integration/test_audit.py."""

from __future__ import annotations

import io

import pytest
from proxymx_tools.audit import AuditReport, InstanceState, Resource, progress_bar


def report(*states: str, errors: tuple[str, ...] = ()) -> AuditReport:
    result = AuditReport(fix=False, dry_run=True, errors=list(errors))
    result.resources = [Resource("classic", f"mx-{n}", state, "why") for n, state in enumerate(states)]
    return result


@pytest.mark.parametrize(
    ("states", "code"),
    [
        (("compliant", "out of scope"), 0),
        (("compliant", "fixed"), 0),
        (("compliant", "drifted"), 2),
        (("blocked",), 2),
        (("cutover in progress",), 2),
        (("broken",), 2),
        (("paused",), 2),
        (("drifted", "failed"), 1),
        ((), 0),
    ],
)
def test_exit_status_is_the_pipeline_gate(states: tuple[str, ...], code: int) -> None:
    # Given units in these states / When the exit status is asked / Then 0, 2 or 1
    assert report(*states).exit_code == code


def test_an_error_exits_1_whatever_the_units_say() -> None:
    assert report("compliant", errors=("DescribeTags: AccessDenied",)).exit_code == 1


def test_summary_counts_states_and_instances() -> None:
    # Given two compliant units, a drifted one and three instances
    result = report("compliant", "drifted", "compliant")
    result.instances = [
        InstanceState("i-1", "ready", "ready"),
        InstanceState("i-2", "not ready", "no tag"),
        InstanceState("i-3", "ready", "ready"),
    ]
    # When summarised
    summary = result.summary()
    # Then each state is counted once, in the order of the states, and the line says the same
    assert summary["resources"] == {"compliant": 2, "drifted": 1}
    assert summary["instances"] == {"not ready": 1, "ready": 2}
    assert result.summary_line().startswith("3 load balancer(s)/target group(s): 2 compliant, 1 drifted; ")


def test_markdown_escapes_pipes_in_reasons() -> None:
    result = report("blocked")
    result.resources[0].reason = "a | b"
    assert "| classic | `mx-0` | **blocked** | a \\| b |" in result.markdown()


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_only() -> None:
    # Given a pipe and a terminal
    assert progress_bar(io.StringIO()) is None
    stream = _Tty()
    show = progress_bar(stream)
    assert show is not None
    # When half the work is done
    show(5, 10)
    # Then the bar is drawn on one line, half full
    assert stream.getvalue() == "\rscanning [" + "#" * 15 + "." * 15 + "] 5/10"
