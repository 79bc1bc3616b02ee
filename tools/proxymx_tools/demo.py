"""``proxymx demo`` (``make demo``): named steps, each timed, then a summary.

The demo is a list of :class:`Step`; each returns a :class:`StepResult` (ok / skipped / failed,
a one-line summary, the lines to print). Later work appends steps (the data-plane chain of
issue 4) with :meth:`Demo.add`; the exit status is 0 only when no step failed.

Step "invoke every sample event": every ``events/*.json`` goes through ``proxymx invoke`` on a
fresh embedded AWS; the table shows event -> rule(s) -> outcome -> AWS calls (reads/writes),
and each outcome and rule set is checked against ``events/expected.json``.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

from proxymx_tools import template as tpl

EVENTS_DIR = tpl.DEFAULT_TEMPLATE.parent / "events"
MANIFEST_NAME = "expected.json"

Status = Literal["ok", "skipped", "failed"]


@dataclass
class StepResult:
    status: Status
    summary: str
    lines: list[str] = field(default_factory=list)


@dataclass
class DemoContext:
    """What steps share: where things are, and a place to pass results to later steps."""

    template_path: Path
    events_dir: Path
    out: TextIO
    shared: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[DemoContext], StepResult]


@dataclass
class Demo:
    steps: list[Step] = field(default_factory=list)

    def add(self, name: str, run: Callable[[DemoContext], StepResult]) -> None:
        self.steps.append(Step(name, run))

    def run(self, context: DemoContext) -> int:
        out = context.out
        results: list[tuple[Step, StepResult, float]] = []
        for number, step in enumerate(self.steps, 1):
            print(f"\n== step {number}/{len(self.steps)}: {step.name}", file=out, flush=True)
            started = time.monotonic()
            try:
                result = step.run(context)
            except Exception as exc:  # a broken step is reported, and the next steps still run
                result = StepResult("failed", f"{type(exc).__name__}: {exc}")
            seconds = time.monotonic() - started
            for line in result.lines:
                print(f"   {line}", file=out)
            print(f"   -> {result.status.upper()} in {seconds:.1f}s: {result.summary}", file=out, flush=True)
            results.append((step, result, seconds))
        print("\n== summary", file=out)
        for step, result, seconds in results:
            print(f"   {result.status.upper():8} {seconds:6.1f}s  {step.name}: {result.summary}", file=out)
        failed = [step.name for step, result, _ in results if result.status == "failed"]
        print(f"   {'FAILED: ' + ', '.join(failed) if failed else 'all steps passed'}", file=out, flush=True)
        return 1 if failed else 0


def load_manifest(events_dir: Path) -> dict[str, dict[str, Any]]:
    path = events_dir / MANIFEST_NAME
    if not path.exists():
        return {}
    events: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8")).get("events", {})
    return events


def sample_events(events_dir: Path) -> list[Path]:
    return sorted(p for p in events_dir.glob("*.json") if p.name != MANIFEST_NAME)


def _cell(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def invoke_every_event(context: DemoContext) -> StepResult:
    """Invoke each sample event on the embedded AWS; compare with events/expected.json."""
    from proxymx_tools.runner import invoke_event

    manifest = load_manifest(context.events_dir)
    paths = sample_events(context.events_dir)
    width = max([len(p.name) for p in paths] + [5])
    header = f"{'event':{width}} {'rule(s)':46} {'outcome':18} calls (reads/writes)"
    lines = [header, "-" * len(header)]
    mismatches: list[str] = []
    reports = {}
    for path in paths:
        event = json.loads(path.read_text(encoding="utf-8"))
        report = invoke_event(event, backend="moto", template_path=context.template_path)
        reports[path.name] = report
        expected = manifest.get(path.name)
        rules = ", ".join(report.matched_rules) or "(no rule matches)"
        if expected is None:
            verdict = "?"
            mismatches.append(f"{path.name}: no entry in {MANIFEST_NAME}")
        elif expected.get("outcome") != report.outcome or sorted(expected.get("rules", [])) != sorted(
            report.matched_rules
        ):
            verdict = "x"
            mismatches.append(
                f"{path.name}: expected {expected.get('outcome')} via {expected.get('rules')}, "
                f"got {report.outcome} via {report.matched_rules}"
                + (f" ({report.error})" if report.error else "")
            )
        else:
            verdict = "ok"
        outcome = f"{report.outcome} {verdict}"
        calls = f"{len(report.aws_calls)} ({report.reads}/{report.writes})"
        lines.append(f"{path.name:{width}} {_cell(rules, 46):46} {outcome:18} {calls}")
    context.shared["invoke_reports"] = reports
    lines.extend(f"! {m}" for m in mismatches)
    total = len(reports)
    if mismatches:
        return StepResult("failed", f"{len(mismatches)} of {total} events not as expected", lines)
    return StepResult("ok", f"{total} events, every outcome as expected ({MANIFEST_NAME})", lines)


def default_demo(*, chain: bool = True) -> Demo:
    demo = Demo()
    demo.add("invoke every sample event through the template's rules (embedded AWS)", invoke_every_event)
    if chain:
        from proxymx_tools.chain import add_chain

        add_chain(demo)
    return demo


def main(
    template_path: str | Path | None = None,
    out: TextIO | None = None,
    *,
    chain: bool = True,
    data_plane: bool = True,
) -> int:
    path = Path(template_path or tpl.DEFAULT_TEMPLATE).resolve()
    context = DemoContext(template_path=path, events_dir=path.parent / "events", out=out or sys.stdout)
    # Steps register what they start (processes, the embedded AWS) on this stack: all of it is
    # stopped when the demo ends, whatever happened.
    with contextlib.ExitStack() as stack:
        context.shared["stack"] = stack
        if not data_plane:
            context.shared["skipped"] = "--no-data-plane was given"
        return default_demo(chain=chain).run(context)
