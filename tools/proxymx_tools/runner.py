"""``proxymx invoke``: route an event through template.yaml's rules and run the handlers in-process.

1. Every EventBridge rule of the template (proxymx_tools.template.event_rules) is matched with the
   real pattern matcher (proxymx_tools.eventpattern). A rule targeting a function runs it with the
   event; a rule targeting an SQS queue wraps the event into an SQS record and runs the
   queue's consumers (proxymx_tools.template.queue_consumers), as Lambda's event source mapping would.
2. Each handler is imported from the template's CodeUri/Handler (under a unique module name,
   fresh for every invocation so that its module-level Logger/Metrics see the function's
   ``POWERTOOLS_*`` variables) and called as Lambda would, through its decorators, with the
   function's configuration INJECTED: ``Settings`` built from its environment (Globals plus its
   own variables, ``!Ref`` resolved to parameter defaults, see :func:`resolve`) and fresh
   ``Clients``. Only Powertools' own variables are put in ``os.environ`` while it runs.
3. Every AWS call is recorded (proxymx_tools.recorder); the handler's stdout (JSON logs, EMF)
   is captured so that ``--json`` prints exactly one object.

With ``backend="moto"`` all of it runs inside the embedded AWS, first seeded with the world
the event presumes (proxymx_tools.seed).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

from proxymx.aws import Clients
from proxymx.config import load_settings
from proxymx.errors import MalformedEvent

from proxymx_tools import eventpattern
from proxymx_tools import template as tpl
from proxymx_tools.recorder import AwsCall, CallRecorder

REGION = "us-east-1"
ACCOUNT = "123456789012"


@dataclass
class _Place:
    """The account and region the local stack lives in: the event's own (issue 10), so that an
    ARN in the event is the ARN the calls use; the defaults for events that carry none."""

    region: str = REGION
    account: str = ACCOUNT


_place = _Place()
_REGION_SHAPE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_ACCOUNT_SHAPE = re.compile(r"^\d{12}$")


def event_place(event: Any) -> tuple[str, str]:
    """(region, account) an event names at its top level (an SQS batch: its first body's)."""
    bodies = _sqs_bodies(event)
    source = bodies[0] if bodies and isinstance(bodies[0], dict) else event
    region = source.get("region") if isinstance(source, dict) else None
    account = source.get("account") if isinstance(source, dict) else None
    return (
        region if isinstance(region, str) and _REGION_SHAPE.match(region) else REGION,
        account if isinstance(account, str) and _ACCOUNT_SHAPE.match(account) else ACCOUNT,
    )


@contextlib.contextmanager
def _located(region: str, account: str) -> Iterator[None]:
    previous = (_place.region, _place.account)
    _place.region, _place.account = region, account
    try:
        yield
    finally:
        _place.region, _place.account = previous


STACK = "proxymx"
OUTCOMES_OK = ("changed", "compliant", "ignored")
# Worst first: the report's outcome is the worst of the handlers' outcomes.
OUTCOME_SEVERITY = (
    "failed",
    "rejected",
    "broken",
    "blocked",
    "suspended",
    "paused",
    "changed",
    "compliant",
    "ignored",
)
# Needs attention, not an error (issue 7: the header stays off in front of unready targets).
OUTCOMES_ATTENTION = ("blocked", "broken", "paused", "suspended")


@dataclass(frozen=True)
class Route:
    rule: str
    function: str
    via_queue: str | None = None


@dataclass
class HandlerRun:
    function: str
    outcome: str
    result: Any = None
    error: str | None = None
    reason: str | None = None


@dataclass
class InvokeReport:
    event_source: str | None
    event_name: str | None
    matched_rules: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    outcome: str = "ignored"
    aws_calls: list[AwsCall] = field(default_factory=list)
    error: str | None = None
    runs: list[HandlerRun] = field(default_factory=list)
    logs: str = ""
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome in OUTCOMES_OK

    @property
    def exit_code(self) -> int:
        # 0: changed/compliant/ignored; 2: blocked/broken/paused/suspended (needs attention, not
        # an error); 3: rejected (malformed event); 1: failed.
        if self.ok:
            return 0
        if self.outcome in OUTCOMES_ATTENTION:
            return 2
        return 3 if self.outcome == "rejected" else 1

    @property
    def reads(self) -> int:
        return sum(1 for call in self.aws_calls if call.is_read)

    @property
    def writes(self) -> int:
        return len(self.aws_calls) - self.reads

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` object, exactly these keys."""
        return {
            "matched_rules": self.matched_rules,
            "functions": self.functions,
            "outcome": self.outcome,
            "aws_calls": [call.to_dict() for call in self.aws_calls],
            "error": self.error,
        }


# ----- routing -------------------------------------------------------------------------------


def route(event: Any, template: dict[str, Any]) -> list[Route]:
    """The (rule, function) pairs an event reaches, in template order."""
    if not isinstance(event, dict):
        return []
    routes: list[Route] = []
    for rule in tpl.event_rules(template):
        # Patterns may use intrinsics (the launch flow matches !Ref of its document).
        if not eventpattern.matches(resolve(template, rule.pattern), event):
            continue
        for target in rule.targets:
            if target.kind == "queue":
                routes.extend(
                    Route(rule.logical_id, consumer, target.logical_id)
                    for consumer in tpl.queue_consumers(template, target.logical_id)
                )
            else:
                routes.append(Route(rule.logical_id, target.logical_id))
    return routes


def sqs_event(event: dict[str, Any], queue_logical_id: str) -> dict[str, Any]:
    """The event as Lambda's SQS event source mapping delivers it (one record)."""
    body = json.dumps(event)
    now_ms = str(int(time.time() * 1000))
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": f"AQEB{uuid.uuid4().hex}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": now_ms,
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": now_ms,
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{_place.region}:{_place.account}:{STACK}-{queue_logical_id}",
                "awsRegion": _place.region,
            }
        ]
    }


# ----- the function's environment ------------------------------------------------------------


def _conditions(template: dict[str, Any]) -> dict[str, Any]:
    conditions: dict[str, Any] = template.get("Conditions") or {}
    return conditions


def _condition(template: dict[str, Any], name: str) -> bool:
    return bool(_evaluate(template, _conditions(template).get(name, False)))


def _evaluate(template: dict[str, Any], expr: Any) -> Any:
    if isinstance(expr, dict) and len(expr) == 1:
        ((key, value),) = expr.items()
        if key == "Fn::Equals":
            left, right = (resolve(template, v) for v in value)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not _evaluate(template, value[0])
        if key == "Fn::And":
            return all(_evaluate(template, v) for v in value)
        if key == "Fn::Or":
            return any(_evaluate(template, v) for v in value)
        if key == "Condition":
            return _condition(template, value)
    return resolve(template, expr)


def _get_att_arn(template: dict[str, Any], logical_id: str) -> str:
    rtype = (template.get("Resources", {}).get(logical_id) or {}).get("Type", "")
    if logical_id.endswith("Role") or rtype == "AWS::IAM::Role":
        # SAM names a function's generated role <Function>Role (events/elb-own-change.json
        # carries that role as the caller).
        return f"arn:aws:iam::{_place.account}:role/{STACK}-{logical_id}"
    if rtype == "AWS::SQS::Queue":
        return f"arn:aws:sqs:{_place.region}:{_place.account}:{STACK}-{logical_id}"
    if rtype in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
        return f"arn:aws:lambda:{_place.region}:{_place.account}:function:{STACK}-{logical_id}"
    if rtype == "AWS::SNS::Topic":
        return f"arn:aws:sns:{_place.region}:{_place.account}:{STACK}-{logical_id}"
    return f"arn:aws:cloudformation:{_place.region}:{_place.account}:{STACK}/{logical_id}"


def _ref(template: dict[str, Any], name: str) -> Any:
    # Locally, a resource's physical name is "<stack>-<LogicalId>" for the stack "proxymx" (the
    # SSM document is "proxymx-PostfixProxyProtocolDocument"; a queue URL and a role ARN too).
    pseudo = {
        "AWS::Region": _place.region,
        "AWS::AccountId": _place.account,
        "AWS::Partition": "aws",
        "AWS::StackName": STACK,
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::NoValue": None,
    }
    if name in pseudo:
        return pseudo[name]
    parameters = template.get("Parameters") or {}
    if name in parameters:
        return parameters[name].get("Default", "")
    resource = template.get("Resources", {}).get(name) or {}
    rtype = resource.get("Type", "")
    if rtype == "AWS::SSM::Parameter" and (resource.get("Properties") or {}).get("Name"):
        # Ref of a parameter is its Name (the kill switch: /proxymx/<stack>/enabled).
        return resolve(template, resource["Properties"]["Name"])
    if rtype == "AWS::SQS::Queue":
        return f"https://sqs.{_place.region}.amazonaws.com/{_place.account}/{STACK}-{name}"
    if rtype == "AWS::SNS::Topic":
        return _get_att_arn(template, name)
    return f"{STACK}-{name}"


def resolve(template: dict[str, Any], value: Any) -> Any:
    """Resolve the intrinsics an environment variable may use, as a fresh local stack would."""
    if isinstance(value, list):
        return [resolve(template, v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        return {k: resolve(template, v) for k, v in value.items()}
    ((key, arg),) = value.items()
    if key == "Ref":
        return _ref(template, str(arg))
    if key == "Fn::GetAtt":
        logical_id, attribute = (arg if isinstance(arg, list) else str(arg).split(".", 1))[:2]
        if attribute == "Arn":
            return _get_att_arn(template, logical_id)
        return f"{STACK}-{logical_id}-{attribute}"
    if key == "Fn::Sub":
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        for name, var in variables.items():
            text = text.replace("${" + name + "}", str(resolve(template, var)))
        while "${" in text:
            start = text.index("${")
            end = text.index("}", start)
            name = text[start + 2 : end]
            replacement = (
                resolve(template, {"Fn::GetAtt": name.split(".", 1)}) if "." in name else _ref(template, name)
            )
            text = text[:start] + str(replacement) + text[end + 1 :]
        return text
    if key == "Fn::If":
        condition, when_true, when_false = arg
        return resolve(template, when_true if _condition(template, condition) else when_false)
    if key == "Fn::Join":
        separator, items = arg
        return separator.join(str(i) for i in resolve(template, items))
    if key == "Fn::Select":
        index, items = arg
        return resolve(template, items)[int(index)]
    if key == "Fn::Split":
        separator, text = arg
        return str(resolve(template, text)).split(separator)
    return {key: resolve(template, arg)}


def function_env(template: dict[str, Any], logical_id: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for name, raw in tpl.function_environment(template, logical_id).items():
        value = resolve(template, raw)
        if value is None:
            continue
        env[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return env


# ----- what the user may change: parameters, the function, the event's own shape -----------

DIRECT_RULE = "(--function: no rule)"


class InvokeUsageError(ValueError):
    """A parameter override or function name the template does not have (exit 2)."""


def parse_parameter_overrides(tokens: list[str]) -> dict[str, str]:
    """The SAM CLI's ``--parameter-overrides``: ``KEY=VALUE`` pairs separated by spaces, or
    ``ParameterKey=KEY,ParameterValue=VALUE`` (whose value may hold commas: ``SmtpPorts``)."""
    import shlex

    overrides: dict[str, str] = {}
    for token in tokens:
        for pair in shlex.split(token):
            if pair.startswith("ParameterKey="):
                key, sep, value = pair[len("ParameterKey=") :].partition(",ParameterValue=")
            else:
                key, sep, value = pair.partition("=")
            if not sep or not key:
                raise InvokeUsageError(
                    f"--parameter-overrides: {pair!r} is neither KEY=VALUE nor "
                    "ParameterKey=KEY,ParameterValue=VALUE"
                )
            overrides[key] = value
    return overrides


def with_parameters(template: dict[str, Any], overrides: Mapping[str, str]) -> dict[str, Any]:
    """The template with ``overrides`` as its parameters' values, checked as CloudFormation would."""
    import copy
    import re

    if not overrides:
        return template
    parameters = template.get("Parameters") or {}
    result = copy.deepcopy(template)
    for key, value in overrides.items():
        if key not in parameters:
            raise InvokeUsageError(f"--parameter-overrides: the template has no parameter {key!r}")
        spec = parameters[key]
        allowed = spec.get("AllowedValues")
        if allowed and value not in [str(v) for v in allowed]:
            raise InvokeUsageError(f"--parameter-overrides: {key}={value!r} is not one of {allowed}")
        pattern = spec.get("AllowedPattern")
        if pattern and not re.fullmatch(pattern, value):
            raise InvokeUsageError(f"--parameter-overrides: {key}={value!r} does not match {pattern}")
        result["Parameters"][key]["Default"] = value
    return result


def function_logical_id(template: dict[str, Any], name: str) -> str:
    """``NAME`` as ``sam local invoke`` takes it: a function's logical id (``Function`` optional)."""
    functions = [
        logical_id
        for logical_id, resource in template["Resources"].items()
        if resource.get("Type") == "AWS::Serverless::Function"
    ]
    for candidate in (name, f"{name}Function"):
        if candidate in functions:
            return candidate
    raise InvokeUsageError(f"--function: no function {name!r} in the template ({', '.join(functions)})")


def _sqs_bodies(event: Any) -> list[Any] | None:
    """The decoded bodies of an SQS batch (what ``sam local generate-event sqs`` wraps), else None."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list) or not records:
        return None
    if not all(isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records):
        return None
    bodies = []
    for record in records:
        try:
            bodies.append(json.loads(str(record.get("body", ""))))
        except json.JSONDecodeError:
            bodies.append(record.get("body"))
    return bodies


def _seed(seed_world: Any, event: Any) -> Any:
    """Seed the world of the event, or of each body of an SQS batch (bodies rewritten alike)."""
    bodies = _sqs_bodies(event)
    if bodies is None:
        return seed_world(event)
    records = [
        {**record, "body": json.dumps(seed_world(body)) if isinstance(body, dict) else record["body"]}
        for record, body in zip(event["Records"], bodies, strict=True)
    ]
    return {**event, "Records": records}


def _malformed(template: dict[str, Any], routes: list[Route], event: Any) -> str | None:
    """Why the first function an event reaches would reject it (its own parser), else None."""
    from proxymx.models.attach import parse_load_balancer_event
    from proxymx.models.lifecycle import parse_launch_batch, parse_lifecycle_event
    from proxymx.models.schedule import parse_scheduled_event
    from proxymx.models.ssm import parse_ssm_event

    def launch_batch(batch: Any) -> None:
        parse_launch_batch(batch)
        for body in _sqs_bodies(batch) or []:
            parse_lifecycle_event(body)

    # By the function's code directory: the parser its handler calls before anything else.
    parsers: dict[str, Any] = {
        "enable_proxy_protocol": parse_load_balancer_event,
        "configure_instance": launch_batch,
        "check_outcome": parse_ssm_event,
        "reconcile": parse_scheduled_event,
    }
    for route_ in routes:
        parser = parsers.get(tpl.function_entry(template, route_.function).code_dir.name)
        if parser is None:
            continue
        try:
            parser(sqs_event(event, route_.via_queue) if route_.via_queue else event)
        except MalformedEvent as exc:
            return str(exc)
    return None


# ----- running a handler in-process ----------------------------------------------------------


class LocalContext:
    """The LambdaContext attributes Powertools reads."""

    def __init__(self, function: str) -> None:
        self.function_name = f"{STACK}-{function}"
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            f"arn:aws:lambda:{_place.region}:{_place.account}:function:{self.function_name}"
        )
        self.memory_limit_in_mb = 256
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + 60

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def reset_powertools_logger(service: str) -> None:
    # Powertools configures the "<service>" stdlib logger once per process, bound to the
    # stdout of that moment; unbind it so that this invocation's capture gets the logs.
    logger = logging.getLogger(service)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    for attribute in ("init", "powertools_handler", "powertools_buffer_config"):
        if hasattr(logger, attribute):
            with contextlib.suppress(AttributeError):
                delattr(logger, attribute)


def _load_handler_module(entry: tpl.FunctionEntry) -> ModuleType:
    path = entry.code_dir / f"{entry.module.replace('.', '/')}.py"
    name = f"_proxymx_fn_{entry.logical_id}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(entry.code_dir))  # the handler's sibling modules, as in Lambda
    try:
        spec.loader.exec_module(module)
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(entry.code_dir))
    return module


@contextlib.contextmanager
def _function_process(env: Mapping[str, str]) -> Iterator[io.StringIO]:
    """Powertools' variables of the function, and its stdout captured. (proxymx's own settings are
    not read from the environment here: they are injected.)"""
    captured = io.StringIO()
    powertools = {key: value for key, value in env.items() if key.startswith("POWERTOOLS_")}
    with (
        mock.patch.dict(os.environ, powertools),
        contextlib.redirect_stdout(captured),
        contextlib.redirect_stderr(captured),
    ):
        reset_powertools_logger(env.get("POWERTOOLS_SERVICE_NAME", "service_undefined"))
        try:
            yield captured
        finally:
            reset_powertools_logger(env.get("POWERTOOLS_SERVICE_NAME", "service_undefined"))


def _outcome_of(result: Any, writes: int) -> str:
    if isinstance(result, dict):
        outcome = result.get("outcome")
        if isinstance(outcome, str) and outcome in OUTCOME_SEVERITY:
            return outcome
        if result.get("batchItemFailures"):
            return "failed"
    # A handler that does not say: judge by what it did.
    return "changed" if writes else "compliant"


def run_handler(
    template: dict[str, Any],
    template_path: Path,
    route_: Route,
    event: Any,
    *,
    env_overrides: Mapping[str, str],
    recorder: CallRecorder,
) -> tuple[HandlerRun, str]:
    entry = tpl.function_entry(template, route_.function, template_path)
    env = {**function_env(template, route_.function), **env_overrides}
    payload = sqs_event(event, route_.via_queue) if route_.via_queue else event
    before = len(recorder.writes)
    with _function_process(env) as captured:
        try:
            handler = getattr(_load_handler_module(entry), entry.handler)
            # Through the handler's decorators (as Lambda calls it), with its configuration injected.
            result = handler(
                payload, LocalContext(route_.function), settings=load_settings(env), clients=Clients()
            )
        except MalformedEvent as exc:
            run = HandlerRun(route_.function, "rejected", error=str(exc))
        except Exception as exc:
            run = HandlerRun(route_.function, "failed", error=f"{type(exc).__name__}: {exc}")
        else:
            outcome = _outcome_of(result, len(recorder.writes) - before)
            reason = result.get("reason") if isinstance(result, dict) else None
            failures = result.get("batchItemFailures") if isinstance(result, dict) else None
            error = f"batchItemFailures: {failures} (the logs say why: --verbose)" if failures else None
            run = HandlerRun(route_.function, outcome, result=result, reason=reason, error=error)
    return run, captured.getvalue()


def _worst(outcomes: list[str]) -> str:
    for outcome in OUTCOME_SEVERITY:
        if outcome in outcomes:
            return outcome
    return "ignored"


def invoke_event(
    event: Any,
    *,
    backend: str = "moto",
    dry_run: bool = False,
    template_path: str | Path | None = None,
    seed: bool = True,
    enter_embedded: bool = True,
    env_overrides: Mapping[str, str] | None = None,
    parameter_overrides: Mapping[str, str] | None = None,
    function: str | None = None,
) -> InvokeReport:
    """Route ``event`` through the template's rules and run every matching handler.

    ``backend="moto"``: on the embedded AWS, seeded first (``seed``) with the world the event
    presumes. By default a fresh embedded AWS is entered and left; a caller already inside
    ``embedded_aws()`` (the demo's data-plane chain, a test) passes ``enter_embedded=False`` to
    run in its world and read the result afterwards; ``backend="current"`` is the same without
    seeding (the caller built the world). ``backend="aws"``: real credentials.
    ``env_overrides`` are added to every function's template environment.
    ``parameter_overrides`` replace the template parameters' defaults, for routing and for the
    environment alike (``sam ... --parameter-overrides``). ``function`` skips the rules and
    invokes that function with the event as it is (``sam local invoke NAME -e EVENT``).

    A malformed event is rejected before the embedded AWS is seeded: its parser is the one the
    handler runs first, so nothing is lost, and no half-built world hides the real error.
    """
    started = time.monotonic()
    path = Path(template_path or tpl.DEFAULT_TEMPLATE).resolve()
    template = with_parameters(tpl.load_template(path), parameter_overrides or {})
    source = event.get("source") if isinstance(event, dict) else None
    detail = event.get("detail") if isinstance(event, dict) else None
    name = detail.get("eventName") if isinstance(detail, dict) else None
    report = InvokeReport(
        event_source=str(source) if source else None, event_name=str(name) if name else None
    )
    if function:
        routes = [Route(DIRECT_RULE, function_logical_id(template, function))]
    else:
        routes = route(event, template)
    report.matched_rules = list(dict.fromkeys(r.rule for r in routes if r.rule != DIRECT_RULE))
    report.functions = list(dict.fromkeys(r.function for r in routes))
    if not routes:
        report.outcome = "ignored"
        report.notes.append("no rule of the template matches this event: nothing would run in AWS")
        report.seconds = time.monotonic() - started
        return report
    overrides = {**(env_overrides or {}), **({"DRY_RUN": "true"} if dry_run else {})}
    malformed = _malformed(template, routes, event)
    if malformed:
        report.outcome, report.error = "rejected", malformed
        report.runs = [HandlerRun(r.function, "rejected", error=malformed) for r in routes]
        report.seconds = time.monotonic() - started
        return report
    if backend == "current":
        backend, seed, enter_embedded = "moto", False, False
    if backend == "moto":
        from proxymx_tools.embedded import embedded_aws
        from proxymx_tools.seed import SeedingUnavailable, seed_world

        region, account = event_place(event) if enter_embedded else (REGION, ACCOUNT)
        world = embedded_aws(region, account=account) if enter_embedded else contextlib.nullcontext()
        with world, _located(region, account):
            try:
                event = _seed(seed_world, event) if seed else event
            except Exception as exc:
                # The world the event presumes cannot be built (no seeder, or the embedded AWS
                # refuses it, e.g. a 40-character target group name): a failed report, not a
                # traceback, so that `--json` still prints its one object.
                report.outcome = "failed"
                report.error = (
                    str(exc)
                    if isinstance(exc, SeedingUnavailable)
                    else f"seeding the embedded AWS failed: {type(exc).__name__}: {exc}"
                )
                report.seconds = time.monotonic() - started
                return report
            _run_all(report, template, path, routes, event, overrides=overrides)
    elif backend == "aws":
        _run_all(report, template, path, routes, event, overrides=overrides)
    else:
        raise ValueError(f"unknown backend {backend!r} (moto, current or aws)")
    report.seconds = time.monotonic() - started
    return report


def _run_all(
    report: InvokeReport,
    template: dict[str, Any],
    path: Path,
    routes: list[Route],
    event: Any,
    *,
    overrides: Mapping[str, str],
) -> None:
    logs: list[str] = []
    with CallRecorder() as recorder:
        for route_ in routes:
            run, output = run_handler(
                template, path, route_, event, env_overrides=overrides, recorder=recorder
            )
            report.runs.append(run)
            logs.append(output)
    report.aws_calls = list(recorder.calls)
    report.logs = "".join(logs)
    report.outcome = _worst([run.outcome for run in report.runs])
    errors = [
        f"{run.function}: {run.error}" if len(report.runs) > 1 else run.error
        for run in report.runs
        if run.error
    ]
    report.error = "; ".join(e for e in errors if e) or None
