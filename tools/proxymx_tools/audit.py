"""``proxymx audit``: where every load balancer and instance stands (issue 12).

Reads the account the way the Reconcile sweep does (:mod:`proxymx.inventory`: pages and batches)
and asks the SAME domain code (:class:`proxymx.loadbalancer.service.EnableProxyProtocol`) what it
would do, in a dry run: the plan, the scope, the interlock and the header decisions are the
functions' own, never re-implemented here. Each unit gets one state:

- ``compliant``; ``drifted`` (what the functions would change); ``blocked`` (the interlock keeps
  the header off: the unready targets named); ``cutover in progress`` (the state table's
  ``CUTOVER#<unit>`` item with a phase not in switched/failed/cancelled); ``out of scope`` (why:
  no SMTP port, protocol, opt-out tag, required tag, application load balancer); ``broken`` (an
  NLB header that hangs SMTP); ``paused`` (``proxymx:pause-until``); ``failed`` (could not be read).
- Instances: the fleet's (``proxymx:fleet=<FleetTagValue>``) ``ready`` / ``not ready`` (the
  readiness tag, with why), and ``outside the fleet``: instances behind an in-scope Classic ELB,
  or named by a blocked unit, that do not carry the fleet tag (proxymx never touches them).

``--fix`` runs the same service without the dry run: exactly the functions' writes, the interlock
included (a blocked unit stays off). It never starts a cutover: that needs the functions' IAM scope
and the state table's lock, so a blocked unit is handed to the deployed functions (the Reconcile
sweep starts it under its own role; how to trigger it now is printed).

Exit status: 0 everything in scope compliant (or fixed), 2 anything drifted / blocked / cutting
over / broken / paused, 1 on errors (the AWS error, never a traceback).
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, TextIO

from proxymx import controls
from proxymx.aws import Clients
from proxymx.config import FLEET_TAG_KEY, Settings
from proxymx.errors import NotReadyYet, ProxymxError
from proxymx.inventory import Inventory, ListedClassic, ListedV2, V2Listing
from proxymx.loadbalancer.plan import (
    Blocked,
    TargetGroupState,
    eligible_classic_ports,
    plan_target_groups,
    target_group_candidates,
)
from proxymx.loadbalancer.readiness import READINESS_TAG_KEY, Readiness
from proxymx.loadbalancer.service import EnableProxyProtocol, ProxyProtocolResult
from proxymx.reconcile import SWEEP_BACKOFF
from proxymx.scope import load_balancer_out_of_scope

from proxymx_tools.recorder import CallRecorder

STATES = (
    "compliant",
    "fixed",
    "drifted",
    "blocked",
    "cutover in progress",
    "broken",
    "paused",
    "out of scope",
    "failed",
)
ATTENTION = frozenset({"drifted", "blocked", "cutover in progress", "broken", "paused"})
TERMINAL_PHASES = frozenset({"switched", "failed", "cancelled"})
# How to run the deployed sweep now, rather than wait for its schedule (ReconcileSchedule).
TRIGGER_SWEEP = (
    "aws lambda invoke --function-name <stack>-ReconcileFunction-<id> "
    "--cli-binary-format raw-in-base64-out --payload file://events/scheduled-reconcile.json /dev/stdout"
)

Progress = Callable[[int, int], None]


@dataclass
class Resource:
    kind: str  # classic | target-group | nlb | alb
    id: str
    state: str
    reason: str
    targets: list[dict[str, Any]] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    load_balancer: str | None = None

    @property
    def unit(self) -> str:
        return f"classic/{self.id}" if self.kind == "classic" else f"tg/{self.id}"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind,
            "id": self.id,
            "state": self.state,
            "reason": self.reason,
            "targets": self.targets,
        }
        if self.changes:
            data["changes"] = self.changes
        if self.load_balancer:
            data["load_balancer"] = self.load_balancer
        return data


@dataclass
class InstanceState:
    id: str
    state: str  # ready | not ready | outside the fleet
    reason: str


@dataclass
class AuditReport:
    fix: bool
    dry_run: bool
    resources: list[Resource] = field(default_factory=list)
    instances: list[InstanceState] = field(default_factory=list)
    aws_calls: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # What to tell the operator after the table (blocked units handed to the functions).
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def counts(self) -> Counter[str]:
        return Counter(r.state for r in self.resources)

    @property
    def instance_counts(self) -> Counter[str]:
        return Counter(i.state for i in self.instances)

    @property
    def exit_code(self) -> int:
        if self.errors or self.counts["failed"]:
            return 1
        return 2 if any(self.counts[state] for state in ATTENTION) else 0

    def summary(self) -> dict[str, Any]:
        return {
            "resources": {state: self.counts[state] for state in STATES if self.counts[state]},
            "instances": dict(sorted(self.instance_counts.items())),
            "errors": self.errors,
            "exit_code": self.exit_code,
        }

    def summary_line(self) -> str:
        parts = [f"{n} {state}" for state in STATES if (n := self.counts[state])]
        instances = [f"{n} {state}" for state, n in sorted(self.instance_counts.items())]
        line = f"{len(self.resources)} load balancer(s)/target group(s): {', '.join(parts) or 'none'}"
        line += f"; instances: {', '.join(instances) or 'none'}; {len(self.aws_calls)} AWS calls"
        if self.errors:
            line += f"; {len(self.errors)} error(s)"
        return line

    def to_json(self) -> dict[str, Any]:
        return {
            "resources": [r.to_json() for r in self.resources],
            "instances": [{"id": i.id, "state": i.state, "reason": i.reason} for i in self.instances],
            "summary": self.summary(),
            "aws_calls": [{"service": s, "operation": o} for s, o in self.aws_calls],
        }

    # ----- text ----------------------------------------------------------------------------

    def _rows(self) -> list[tuple[str, str, str, str]]:
        # The reason of a blocked unit names its unready targets already (the first five; --json
        # lists them all). ARNs are shortened to what follows the account in the table only.
        return [(r.kind, _short(r.id), r.state, r.reason.replace(r.id, _short(r.id))) for r in self.resources]

    def table(self) -> str:
        rows = [("KIND", "ID", "STATE", "REASON"), *self._rows()]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = [f"{k:<{widths[0]}}  {i:<{widths[1]}}  {s:<{widths[2]}}  {why}" for k, i, s, why in rows]
        lines.append("")
        lines.extend(self._instance_lines())
        lines.extend(self._change_lines())
        lines.extend(f"error: {e}" for e in self.errors)
        lines.extend(self.notes)
        lines.append(self.summary_line())
        return "\n".join(lines)

    def markdown(self) -> str:
        def cell(text: str) -> str:
            return text.replace("|", "\\|").replace("\n", " ")

        lines = ["| kind | id | state | reason |", "| --- | --- | --- | --- |"]
        lines.extend(f"| {k} | `{cell(i)}` | **{s}** | {cell(why)} |" for k, i, s, why in self._rows())
        lines += ["", "| instance state | count |", "| --- | --- |"]
        lines.extend(f"| {state} | {n} |" for state, n in sorted(self.instance_counts.items()))
        not_ready = [i for i in self.instances if i.state != "ready"]
        if not_ready:
            lines += ["", "| instance | state | reason |", "| --- | --- | --- |"]
            lines.extend(f"| `{i.id}` | {i.state} | {cell(i.reason)} |" for i in not_ready)
        changes = self._change_lines()
        if changes:
            lines += ["", *(f"- {cell(c)}" for c in changes)]
        lines += ["", *(f"- error: {cell(e)}" for e in self.errors), *(f"- {cell(n)}" for n in self.notes)]
        lines += ["", f"**{self.summary_line()}**"]
        return "\n".join(line for line in lines)

    def _instance_lines(self) -> list[str]:
        lines = []
        for state in ("not ready", "outside the fleet"):
            for i in (i for i in self.instances if i.state == state):
                lines.append(f"instance {i.id}: {state} ({i.reason})")
        return lines

    def _change_lines(self) -> list[str]:
        if not self.fix:
            return []
        verb = "would" if self.dry_run else "changed"
        return [f"{verb}: {c}" for r in self.resources for c in r.changes]


def _short(ident: str) -> str:
    """``targetgroup/name/id`` or ``loadbalancer/net/name/id`` of an ELB ARN; a name as it is."""
    return ident.split(":", 5)[5] if ident.startswith("arn:") and ident.count(":") >= 5 else ident


def _targets_of(blocked: list[Blocked]) -> list[dict[str, Any]]:
    return [
        {"id": u.target_id, "ready": False, "why": u.why, "in_fleet": u.in_fleet}
        for b in blocked
        for u in b.unready
    ]


class Audit:
    """One audit run. ``fix``: write (unless ``dry_run``) what the functions would."""

    def __init__(
        self,
        settings: Settings,
        clients: Clients,
        *,
        fix: bool = False,
        dry_run: bool = False,
        progress: Progress | None = None,
        now: datetime | None = None,
    ) -> None:
        # A stack deployed with DryRun=true writes nothing: neither does --fix with its settings.
        writes = fix and not dry_run and not settings.dry_run
        self.settings = replace(settings, dry_run=not writes)
        self.clients = clients
        self.inventory = Inventory(clients)
        # No notifier: a notice is the functions' to send (once per state change, state table).
        self.service = EnableProxyProtocol(self.settings, clients, backoff=SWEEP_BACKOFF, sleep=time.sleep)
        # A report that writes nothing reads the Auto Scaling groups once for every unit.
        self.service.targets.snapshot_groups = not writes
        self._blocked: list[Blocked] = []
        self.service.on_blocked = self._blocked.extend
        self.report = AuditReport(fix=fix, dry_run=not writes)
        self.progress = progress
        self.now = now or datetime.now(UTC)
        self._fleet: dict[str, dict[str, str]] = {}
        self._outside: dict[str, str] = {}

    def run(self) -> AuditReport:
        started = time.monotonic()
        with CallRecorder() as recorder:
            try:
                self._run()
            except ProxymxError as exc:
                self.report.errors.append(str(exc))
        self.report.aws_calls = [(c.service, c.operation) for c in recorder.calls]
        self.report.seconds = time.monotonic() - started
        return self.report

    def _run(self) -> None:
        # The kill switch as it stands now, read once for this run (not a verdict cached by an
        # earlier run in the same process).
        controls.forget()
        self._fleet = self.inventory.fleet_instances(FLEET_TAG_KEY, self.settings.fleet_tag_value)
        classic = self.inventory.classic_load_balancers()
        v2 = self.inventory.v2_load_balancers()
        self.service.nlb.known_ip_address_types.update(v2.ip_address_types())
        total = len(classic) + len(v2.load_balancers)
        done = 0
        for listed in classic:
            self._resource(partial(self._classic, listed), "classic", listed.name)
            done += 1
            self._tick(done, total)
        for lb in v2.load_balancers:
            self._v2(lb, v2)
            done += 1
            self._tick(done, total)
        self._instances()
        self._cutovers()
        blocked = [r for r in self.report.resources if r.state == "blocked"]
        if blocked and self.report.fix:
            self.report.notes.append(
                f"{len(blocked)} blocked unit(s) handed to the deployed functions: with Cutover=auto the "
                "Reconcile sweep configures their fleet targets and switches them under its own role and "
                f"lock (audit never does). Run it now: {TRIGGER_SWEEP}"
            )

    def _tick(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(done, total)

    def _resource(self, read: Callable[[], list[Resource]], kind: str, ident: str) -> None:
        try:
            self.report.resources.extend(read())
        except NotReadyYet as exc:
            self.report.resources.append(
                Resource(kind, ident, "out of scope", f"deleted during the audit ({exc})")
            )
        except ProxymxError as exc:
            self.report.resources.append(Resource(kind, ident, "failed", str(exc)))

    # ----- Classic ----------------------------------------------------------------------------

    def _classic(self, listed: ListedClassic) -> list[Resource]:
        if listed.error:
            return [Resource("classic", listed.name, "failed", listed.error)]
        state = listed.state
        registered = [self._target(i) for i in state.instances]
        scope = load_balancer_out_of_scope([state.tags], self.settings)
        if scope:
            return [Resource("classic", listed.name, "out of scope", scope, registered)]
        if not eligible_classic_ports(state.listeners, self.settings.smtp_ports):
            ports = sorted({listener.load_balancer_port for listener in state.listeners})
            why = f"no SMTP instance port with a TCP/SSL listener (listeners on {ports})"
            return [Resource("classic", listed.name, "out of scope", why, registered)]
        for target in registered:
            if not target["in_fleet"]:
                self._outside.setdefault(target["id"], f"behind Classic ELB {listed.name}")
        self._blocked.clear()
        result = self.service.ensure_classic(
            listed.name, state=self.inventory.classic_policies(listed, self.settings)
        )
        return [self._classify("classic", listed.name, result, registered)]

    def _target(self, instance_id: str) -> dict[str, Any]:
        tags = self._fleet.get(instance_id)
        if tags is None:
            return {"id": instance_id, "ready": None, "why": "outside the fleet", "in_fleet": False}
        readiness = Readiness.parse(tags.get(READINESS_TAG_KEY))
        return {
            "id": instance_id,
            "ready": readiness.state == "ready",
            "why": readiness.why,
            "in_fleet": True,
        }

    # ----- v2 ---------------------------------------------------------------------------------

    def _v2(self, lb: ListedV2, listing: V2Listing) -> None:
        if lb.type != "network":
            why = f"{lb.type} load balancers do not support the PROXY protocol"
            self.report.resources.append(
                Resource(lb.type if lb.type != "application" else "alb", lb.arn, "out of scope", why)
            )
            return
        if lb.error:
            self.report.resources.append(Resource("nlb", lb.arn, "failed", lb.error))
            return
        if not lb.target_groups:
            self.report.resources.append(
                Resource(
                    "nlb",
                    lb.arn,
                    "compliant",
                    "no target groups yet (CreateTargetGroup/CreateListener bring them)",
                )
            )
            return
        tags = {**listing.target_group_tags, lb.arn: lb.tags}

        def read() -> list[Resource]:
            states = self.service.listed_v2_states(lb.arn, lb.target_groups, tags)
            return [self._target_group(lb, tg) for tg in states]

        self._resource(read, "nlb", lb.arn)

    def _target_group(self, lb: ListedV2, tg: TargetGroupState) -> Resource:
        if not target_group_candidates([tg], self.settings):
            (why,) = plan_target_groups([tg], self.settings).skipped or ("not a candidate",)
            return Resource("target-group", tg.arn, "out of scope", why, load_balancer=lb.name)
        # The header attributes, read here (one call, as the sweep does) so that a broken placement
        # is told apart from a header that is simply off; the service does not read them again.
        tg = self.service.nlb.with_proxy_protocol_state(tg)
        broken = bool(plan_target_groups([tg], self.settings).broken)
        self._blocked.clear()
        result = self.service.ensure_target_group_states(tg.name, [tg])
        resource = self._classify("target-group", tg.arn, result, [], load_balancer=lb.name)
        if broken and resource.state in ("drifted", "blocked") and self.settings.dry_run:
            resource.state = "broken"
            resource.reason = "header ON with a placement that hangs SMTP; would: " + "; ".join(
                result.changes
            )
        return resource

    # ----- verdicts ---------------------------------------------------------------------------

    def _classify(
        self,
        kind: str,
        ident: str,
        result: ProxyProtocolResult,
        targets: list[dict[str, Any]],
        *,
        load_balancer: str | None = None,
    ) -> Resource:
        resource = Resource(kind, ident, "compliant", result.reason, targets, load_balancer=load_balancer)
        outcome = result.outcome
        if outcome == "ignored":
            resource.state = "out of scope"
        elif outcome == "changed":
            resource.changes = list(result.changes)
            if self.settings.dry_run:
                resource.state = "drifted"
                resource.reason = "; ".join(f"would {c}" for c in result.changes)
            else:
                resource.state = "fixed"
                resource.reason = f"{result.reason}: " + "; ".join(result.changes)
        elif outcome == "blocked":
            resource.state = "blocked"
            resource.targets = _targets_of(self._blocked) or targets
            for target in resource.targets:
                if target.get("ready") is False and not target.get("in_fleet"):
                    self._outside.setdefault(target["id"], f"not ready behind {ident}: {target['why']}")
        elif outcome in ("broken", "paused"):
            resource.state = outcome
        return resource

    # ----- cutovers (the state table, written by the functions) -------------------------------

    def _cutovers(self) -> None:
        # A held cutover's unit reads "paused" (the brake that holds it): still a cutover in progress.
        pending = [r for r in self.report.resources if r.state in ("blocked", "drifted", "paused")]
        if not pending or not self.settings.state_table_name:
            return
        from proxymx.state import StateTable

        table = StateTable(self.settings.state_table_name, self.clients.dynamodb)
        try:
            # One BatchGetItem per 100 units, not one read per unit (issue 12).
            records = table.get_many((f"CUTOVER#{r.unit}" for r in pending), now=int(self.now.timestamp()))
        except ProxymxError:
            # No table (a stack without the cutover) or not readable: no cutover known.
            return
        for resource in pending:
            item = records.get(f"CUTOVER#{resource.unit}")
            phase = str((item or {}).get("phase", ""))
            if item and phase not in TERMINAL_PHASES:
                resource.state = "cutover in progress"
                since = item.get("started_at")
                held = f" ({item.get('reason', '')})" if phase == "held" else ""
                resource.reason = (
                    f"cutover {phase}" + (f" since {since}" if since else "") + f"{held}; {resource.reason}"
                )

    # ----- instances --------------------------------------------------------------------------

    def _instances(self) -> None:
        for instance_id, tags in sorted(self._fleet.items()):
            readiness = Readiness.parse(tags.get(READINESS_TAG_KEY))
            state = "ready" if readiness.state == "ready" else "not ready"
            self.report.instances.append(InstanceState(instance_id, state, readiness.why))
        for instance_id, why in sorted(self._outside.items()):
            if instance_id not in self._fleet:
                self.report.instances.append(InstanceState(instance_id, "outside the fleet", why))


def progress_bar(stream: TextIO) -> Progress | None:
    """A one-line progress bar on a terminal (stderr), nothing otherwise (pipes, CI logs)."""
    if not stream.isatty():
        return None

    def show(done: int, total: int) -> None:
        width = 30
        filled = width * done // total if total else width
        stream.write(f"\rscanning [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            stream.write("\r" + " " * (width + 30) + "\r")
        stream.flush()

    return show


def settings_from_template(overrides: dict[str, str] | None = None) -> Settings:
    """The Reconcile function's settings as template.yaml gives them (with ``overrides`` of its
    parameters, as ``sam deploy --parameter-overrides`` takes them)."""
    from proxymx.config import load_settings

    from proxymx_tools import template as tpl
    from proxymx_tools.runner import function_env, with_parameters

    template = with_parameters(tpl.load_template(), overrides or {})
    return load_settings(function_env(template, "ReconcileFunction"))


def audit_clients(settings: Settings) -> Clients:
    """Clients with the Reconcile function's call budget (the audit makes the sweep's reads; the
    default budget of a process without FUNCTION_TIMEOUT_SECONDS is a 30 s function's)."""
    import boto3
    from proxymx.aws import botocore_config
    from proxymx.budget import call_budget

    config = botocore_config(call_budget(settings.function_timeout_seconds))

    def make(service: str, **_: Any) -> Any:
        return boto3.client(service, config=config)  # type: ignore[call-overload]

    return Clients(make)


def audit(
    settings: Settings,
    clients: Clients,
    *,
    fix: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> AuditReport:
    return Audit(settings, clients, fix=fix, dry_run=dry_run, progress=progress).run()


def print_report(report: AuditReport, *, as_json: bool, markdown: bool, out: TextIO | None = None) -> None:
    stream = out if out is not None else sys.stdout
    if as_json:
        stream.write(json.dumps(report.to_json(), indent=2) + "\n")
    elif markdown:
        stream.write(report.markdown() + "\n")
    else:
        stream.write(report.table() + "\n")
