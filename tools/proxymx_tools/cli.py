"""The ``proxymx`` command line.

``proxymx invoke EVENT.json [--backend moto|aws] [--dry-run] [--json] [--template PATH] [--verbose]``
    Route the event through template.yaml's EventBridge rules and run the matching handler(s)
    in-process. Exit 0 for changed/compliant/ignored, 3 for rejected (malformed event),
    1 for failed. ``--json`` prints exactly one JSON object (see docs/loadbalancers.md).

``proxymx pause|resume [--stack NAME] [--parameter NAME] [--backend aws|moto]``
    Flip the kill switch (the SSM parameter ``/proxymx/<stack>/enabled``): ``pause`` writes
    ``false`` (no load balancer write, no refresh, no drift repair; launches are still
    configured), ``resume`` writes ``true``. Takes effect within 30 s (the functions' cache).
    ``--backend moto`` flips it in a fresh embedded AWS (to try the verb; nothing persists).
``proxymx audit [--fix] [--dry-run] [--backend aws|moto] [--parameter-overrides K=V ...]
[--json] [--markdown]``
    Where every load balancer, target group and fleet instance stands (proxymx_tools.audit).
    Exit 0 all compliant, 2 drifted/blocked/cutting over/broken/paused (a pipeline gate), 1 errors.

``proxymx demo [--template PATH] [--no-data-plane]``
    The local demo (``make demo``): every sample event, then the whole chain (real Postfix and
    HAProxy when present; ``--no-data-plane`` runs the control-plane part only).

``proxymx off LB-NAME|TARGET-GROUP-ARN|NLB-ARN [--backend aws|moto]``
    The way back (docs/agreement.md): tag the unit ``proxymx:proxy-protocol=off``. proxymx then
    turns its header off FIRST and only then reverts the fleet behind it to plain (the next
    Reconcile sweep, or any event of that load balancer). ``aws`` (default): the standard AWS
    environment (profile, region); ``moto``: the embedded AWS active in this process (tests).

``proxymx cutover list [--json] | clear UNIT [--stack NAME] [--table NAME] [--backend aws|moto]``
    The cutovers' records (unit, phase, started, reason, retry_after); ``clear`` deletes a
    record whose cutover is over (switched, failed, cancelled) so a new one may start before its
    ``retry_after``, and refuses (exit 1) a cutover in flight. The StateTable is the stack's
    (``--stack``, default proxymx) unless ``--table`` names it (proxymx_tools.cutover_cli).

Never imported by a Lambda handler.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from proxymx_tools import template as tpl


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="proxymx",
        description="Keep a Postfix MX fleet behind AWS load balancers speaking the PROXY protocol.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    invoke = commands.add_parser(
        "invoke",
        help="route an event through the template's rules and run the matching handlers",
        description=(
            "Route EVENT.json through the EventBridge rules of template.yaml and run the matching "
            "handler(s) in-process. Exit 0 for changed/compliant/ignored, 3 for rejected, 1 for failed."
        ),
    )
    invoke.add_argument(
        "event", type=Path, help="an EventBridge event (JSON), e.g. events/elb-create-smtp.json"
    )
    invoke.add_argument(
        "--backend",
        choices=("moto", "aws"),
        default="moto",
        help="moto: the embedded AWS, seeded with the world the event presumes (default); "
        "aws: your real credentials and account",
    )
    invoke.add_argument("--dry-run", action="store_true", help="DRY_RUN=true: log the plan, write nothing")
    invoke.add_argument("--json", action="store_true", help="print one JSON object and nothing else")
    invoke.add_argument("--template", type=Path, default=None, help="template.yaml to route through")
    invoke.add_argument(
        "--verbose", "-v", action="store_true", help="also print the handlers' logs and metrics"
    )
    invoke.add_argument(
        "--parameter-overrides",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="template parameters for routing and for the functions, as sam deploy takes them: "
        "KEY=VALUE ... or ParameterKey=KEY,ParameterValue=VALUE ...",
    )
    invoke.add_argument(
        "--function",
        metavar="NAME",
        help="invoke this function (logical id) with the event as it is, no rules "
        "(like sam local invoke NAME -e EVENT); an SQS event reaches ConfigureInstance this way",
    )

    off = commands.add_parser(
        "off",
        help="ask for the PROXY header off on a load balancer / target group (the way back)",
        description=(
            "Tag the Classic ELB (by name), target group or NLB (by ARN) proxymx:proxy-protocol=off. "
            "proxymx turns the header off first, then reverts the fleet behind it to plain."
        ),
    )
    off.add_argument("unit", help="Classic ELB name, target group ARN or network load balancer ARN")
    off.add_argument("--backend", choices=("aws", "moto"), default="aws", help="aws (default) or moto")
    for verb, what in (
        ("pause", "kill switch OFF: proxymx stops writing to load balancers and instances"),
        ("resume", "kill switch ON: proxymx writes again (within 30 s)"),
    ):
        switch = commands.add_parser(verb, help=what, description=f"{what}. Launches are always configured.")
        switch.add_argument("--stack", default="proxymx", help="the proxymx stack's name (default proxymx)")
        switch.add_argument(
            "--parameter", default=None, help="the parameter's name (default /proxymx/<stack>/enabled)"
        )
        switch.add_argument(
            "--backend",
            choices=("aws", "moto"),
            default="aws",
            help="aws: your credentials and account (default); moto: a fresh embedded AWS",
        )
    cutover = commands.add_parser(
        "cutover",
        help="list the cutovers' records, or clear one that is over",
        description="The fleet-first cutovers' StateTable records (docs/agreement.md).",
    )
    actions = cutover.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="unit, phase, started, reason, retry_after of each record")
    listing.add_argument("--json", action="store_true", help="one JSON object")
    clearing = actions.add_parser(
        "clear",
        help="delete the record of a cutover that is over (switched/failed/cancelled)",
        description=(
            "Delete CUTOVER#<unit> when its cutover is over, so the next event or sweep may start a "
            "new one before retry_after. A cutover in flight is refused (exit 1); nothing else is released."
        ),
    )
    clearing.add_argument(
        "unit", help="Classic ELB name, target group ARN, or a unit key (classic/..., tg/...)"
    )
    for action in (listing, clearing):
        action.add_argument("--stack", default="proxymx", help="the proxymx stack's name (default proxymx)")
        action.add_argument("--table", default=None, help="the StateTable's name (default: the stack's)")
        action.add_argument(
            "--backend",
            choices=("aws", "moto"),
            default="aws",
            help="aws: your credentials and account (default); moto: the embedded AWS of this process",
        )
    audit = commands.add_parser(
        "audit",
        help="where every load balancer and instance stands; --fix applies what the functions would",
        description=(
            "Read every Classic ELB, NLB target group and fleet instance in the account and region "
            "(credentials and endpoint from the standard AWS environment, AWS_ENDPOINT_URL included). "
            "Exit 0 when everything in scope is compliant, 2 when anything is drifted, blocked, cutting "
            "over, broken or paused, 1 on errors."
        ),
    )
    audit.add_argument(
        "--fix", action="store_true", help="apply what the functions would (never starts a cutover)"
    )
    audit.add_argument("--dry-run", action="store_true", help="with --fix: print the plan, write nothing")
    audit.add_argument(
        "--backend",
        choices=("aws", "moto"),
        default="aws",
        help="aws: the account of your AWS environment (default); moto: a seeded embedded AWS (a demo)",
    )
    audit.add_argument(
        "--parameter-overrides",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="the stack's parameters (SmtpPorts, FleetTagValue, RequiredTag...), as sam deploy takes them",
    )
    output = audit.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON object and nothing else")
    output.add_argument("--markdown", action="store_true", help="print the table as Markdown")

    demo = commands.add_parser("demo", help="run the local demo (make demo)")
    demo.add_argument("--template", type=Path, default=None, help="template.yaml to use")
    demo.add_argument(
        "--no-data-plane",
        action="store_true",
        help="skip the local Postfix/HAProxy part (SSM command outcomes are emulated)",
    )
    return parser


def _rejected(message: str) -> dict[str, Any]:
    return {"matched_rules": [], "functions": [], "outcome": "rejected", "aws_calls": [], "error": message}


def _invoke(args: argparse.Namespace) -> int:
    from proxymx_tools.runner import InvokeUsageError, invoke_event, parse_parameter_overrides

    try:
        event = json.loads(args.event.read_text(encoding="utf-8"))
    except OSError as exc:
        print(f"proxymx invoke: cannot read {args.event}: {exc.strerror}", file=sys.stderr)
        return 2
    except json.JSONDecodeError as exc:
        message = f"{args.event} is not JSON: {exc}"
        if args.json:
            print(json.dumps(_rejected(message)))
        else:
            print(f"outcome    rejected: {message}")
        return 3
    try:
        report = invoke_event(
            event,
            backend=args.backend,
            dry_run=args.dry_run,
            template_path=args.template,
            parameter_overrides=parse_parameter_overrides(args.parameter_overrides),
            function=args.function,
        )
    except InvokeUsageError as exc:
        print(f"proxymx invoke: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        # Outside any handler (an unreadable --template, a broken embedded AWS): still one
        # answer in the promised shape, and exit 1 like any failure.
        message = f"{type(exc).__name__}: {exc}"
        if args.json:
            print(json.dumps({**_rejected(message), "outcome": "failed"}))
        else:
            print(f"outcome    failed: {message}")
        return 1
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        if args.verbose and report.logs:
            print(report.logs, file=sys.stderr, end="")
        return report.exit_code

    template_name = args.template or tpl.DEFAULT_TEMPLATE.name
    print(f"event      {args.event}: {report.event_source or '?'} {report.event_name or ''}".rstrip())
    if args.function:
        print(f"rules      none consulted (--function {args.function})")
        print(f"functions  {', '.join(report.functions)}")
    elif report.matched_rules:
        print(f"rules      {', '.join(report.matched_rules)}")
        print(f"functions  {', '.join(report.functions)}")
    else:
        print(f"rules      NONE: no rule of {template_name} matches this event (nothing would run in AWS)")
    reasons = "; ".join(run.reason for run in report.runs if run.reason)
    print(f"outcome    {report.outcome}{': ' + reasons if reasons else ''}")
    if report.error:
        print(f"error      {report.error}")
    for run in report.runs:
        changes = run.result.get("changes") if isinstance(run.result, dict) else None
        for change in changes or []:
            print(f"change     {'would ' if args.dry_run else ''}{change}")
    if report.runs:
        counts = f"{report.reads} reads, {report.writes} writes"
        print(f"aws calls  {len(report.aws_calls)} ({counts}) on {args.backend}")
        for number, call in enumerate(report.aws_calls, 1):
            print(f"  {number:2}. {call.service}.{call.operation} {json.dumps(call.params)}")
    if args.verbose and report.logs:
        print("logs (JSON log lines and EMF metrics, as CloudWatch would get them):")
        print(report.logs, end="")
    elif report.logs:
        print("logs       captured; --verbose shows them")
    return report.exit_code


def request_off(unit: str, clients: Any) -> str:
    """Tag the unit ``proxymx:proxy-protocol=off``; what was tagged (raises on an AWS error)."""
    from proxymx.loadbalancer.readiness import READINESS_TAG_KEY
    from proxymx.loadbalancer.wayback import OFF_VALUE

    tag = {"Key": READINESS_TAG_KEY, "Value": OFF_VALUE}
    if unit.startswith("arn:"):
        clients.elbv2.add_tags(ResourceArns=[unit], Tags=[tag])
        return unit
    clients.elb.add_tags(LoadBalancerNames=[unit], Tags=[tag])
    return f"Classic ELB {unit}"


def _off(args: argparse.Namespace) -> int:
    from proxymx.aws import Clients

    if args.backend == "moto":
        from proxymx_tools.embedded import current_extension

        if current_extension() is None:
            print("proxymx off: --backend moto needs an embedded AWS in this process", file=sys.stderr)
            return 2
    try:
        tagged = request_off(args.unit, Clients())
    except Exception as exc:  # an AWS error, credentials: one line, exit 1
        print(f"proxymx off: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(
        f"tagged     {tagged} proxymx:proxy-protocol=off\n"
        "next       proxymx turns the header off first, then reverts the fleet targets no other unit "
        "sends the header to (the next Reconcile sweep, or any event of this load balancer)"
    )
    return 0


def _switch(args: argparse.Namespace, *, enabled: bool) -> int:
    """``proxymx pause`` / ``resume``: overwrite the kill switch and read it back."""
    from proxymx.aws import Clients
    from proxymx.controls import ENABLED, set_enabled
    from proxymx.errors import ProxymxError, aws_errors

    name = args.parameter or f"/proxymx/{args.stack}/enabled"

    def flip() -> str:
        ssm = Clients().ssm
        # Read first: a wrong stack name must fail, not create a parameter no function reads.
        ssm.get_parameter(Name=name)
        set_enabled(ssm, name, enabled)
        return str(ssm.get_parameter(Name=name)["Parameter"]["Value"])

    try:
        if args.backend == "moto":
            from proxymx_tools.embedded import ENABLED_PARAMETER_NAME, create_enabled_parameter, embedded_aws

            with embedded_aws() as world:
                if name != ENABLED_PARAMETER_NAME:
                    create_enabled_parameter(world.region, name)
                value = flip()
        else:
            value = flip()
    except (ProxymxError, *aws_errors()) as exc:  # type: ignore[misc]
        print(f"proxymx {args.command}: {name}: {exc}", file=sys.stderr)
        return 1
    state = "running (writes allowed)" if value == ENABLED else "PAUSED (no load balancer write, no refresh)"
    print(f"{name} = {value}: proxymx is {state}; the functions see it within 30 s")
    return 0


def _cutover(args: argparse.Namespace) -> int:
    """``proxymx cutover list`` / ``clear UNIT``."""
    import time

    from proxymx.aws import Clients
    from proxymx.errors import ProxymxError, aws_errors
    from proxymx.loadbalancer.cutover import CutoverRecords
    from proxymx.state import StateTable

    from proxymx_tools import cutover_cli

    clients = Clients()
    try:
        table = args.table
        if table is None and args.backend == "moto":
            from proxymx_tools.embedded import STATE_TABLE_NAME, current_extension

            if current_extension() is None:
                print(
                    "proxymx cutover: --backend moto needs an embedded AWS in this process", file=sys.stderr
                )
                return 2
            table = STATE_TABLE_NAME
        if table is None:
            table = cutover_cli.stack_table(clients.client("cloudformation"), args.stack)
        records = CutoverRecords(StateTable(table, clients.dynamodb))
        if args.action == "list":
            found = cutover_cli.rows(records.listed(int(time.time())))
            print(
                json.dumps({"table": table, "cutovers": found})
                if args.json
                else cutover_cli.table_text(found)
            )
            return 0
        cleared = cutover_cli.clear(records, args.unit)
    except (ProxymxError, *aws_errors()) as exc:  # type: ignore[misc]
        print(f"proxymx cutover {args.action}: {exc}", file=sys.stderr)
        return 1
    print(cleared.message, file=sys.stdout if cleared.ok else sys.stderr)
    return 0 if cleared.ok else 1


def _audit(args: argparse.Namespace) -> int:
    import contextlib
    import logging

    from proxymx_tools.audit import audit, audit_clients, print_report, progress_bar, settings_from_template
    from proxymx_tools.runner import InvokeUsageError, parse_parameter_overrides

    # The domain code logs what it decides (CloudWatch's business in Lambda); the audit's report
    # says it once. Without a handler, Python would print the warnings on stderr.
    logging.getLogger("proxymx").addHandler(logging.NullHandler())
    if args.dry_run and not args.fix:
        # An audit writes nothing anyway; say so instead of silently accepting it.
        print(
            "proxymx audit: --dry-run only means something with --fix (an audit never writes)",
            file=sys.stderr,
        )
    try:
        settings = settings_from_template(parse_parameter_overrides(args.parameter_overrides))
    except (InvokeUsageError, ValueError) as exc:
        print(f"proxymx audit: {exc}", file=sys.stderr)
        return 1
    world: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if args.backend == "moto":
        from proxymx_tools.embedded import embedded_aws

        world = embedded_aws()
    with world:
        if args.backend == "moto":
            from proxymx_tools.seed_account import realistic_account

            realistic_account(load_balancers=45, instances=100)
        try:
            report = audit(
                settings,
                audit_clients(settings),
                fix=args.fix,
                dry_run=args.dry_run,
                progress=progress_bar(sys.stderr),
            )
        except Exception as exc:
            # A bug's path, not AWS's (the audit turns AWS errors into its report): one line, exit 1.
            print(f"proxymx audit: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    print_report(report, as_json=args.json, markdown=args.markdown)
    return report.exit_code


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "audit":
        try:
            return _audit(args)
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 141
    if args.command == "invoke":
        try:
            return _invoke(args)
        except BrokenPipeError:
            # `proxymx invoke ... --json | head`: the reader left. Exit like a process killed by
            # SIGPIPE (128 + 13), without a traceback, and keep the interpreter from writing more.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 141
    if args.command == "off":
        return _off(args)
    if args.command in ("pause", "resume"):
        return _switch(args, enabled=args.command == "resume")
    if args.command == "cutover":
        return _cutover(args)
    if args.command == "demo":
        from proxymx_tools import demo

        return demo.main(args.template, data_plane=not args.no_data_plane)
    raise AssertionError(args.command)  # pragma: no cover - argparse enforces the choices


if __name__ == "__main__":
    raise SystemExit(main())
