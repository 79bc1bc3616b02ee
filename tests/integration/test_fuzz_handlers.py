"""Every sample event, mutated, through the REAL handlers on the embedded AWS (issue 9, "keep it
that way"). tests/unit/test_event_fuzz.py holds the parsers to "parsed or MalformedEvent"; this
holds the whole function (routing by the template's rules, the handler's decorators, the domain
code, the adapters) to three properties, for each mutant:

1. no traceback: nothing but a proxymx domain exception escapes a handler or is logged with its
   traceback (a ``TypeError`` inside one SQS record, caught by the partial batch, counts);
2. rejected or ignored means zero AWS writes (the recorder's write operations);
3. any write the mutant makes is one the unmutated event also makes: same operation, same
   target resource (load balancer, target group, instance, group, hook, table, topic).

The mutations: wrong types, missing fields, huge fields, unicode, shell metacharacters, forged
identities (our own role as the caller, another account's role), other accounts and regions.

Cost: one embedded world per sample, seeded once (seeding costs ~0.2 to 1.5 s, a case ~50 ms).
The unmutated event runs first, twice (a redelivery does what the first run left to do: claims,
already-over completions), and its writes are the reference; the mutants then run on that same
world, which is not reset between cases: a mutant meets the world as a redelivery would. What
this does not catch: a mutant whose write would differ only on a world the sample's first run
had not yet made compliant.

Cases: ``settings.default.max_examples`` in all, spread over the samples (the "ci" profile:
1,000; see tests/conftest.py). Reproducible: the seed is printed in pytest's header and in every
failure; ``--hypothesis-seed=N`` replays it.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from proxymx import errors
from proxymx_tools.embedded import embedded_aws
from proxymx_tools.recorder import AwsCall
from proxymx_tools.runner import InvokeReport, invoke_event
from proxymx_tools.seed import seed_world
from support import EVENTS_DIR, load_event, paths

SAMPLES = sorted(p.stem for p in EVENTS_DIR.glob("*.json") if p.stem != "expected")
OWN_ROLE = "arn:aws:sts::123456789012:assumed-role/proxymx-EnableProxyProtocolFunctionRole/proxymx"


def _domain_exceptions() -> set[str]:
    found: set[str] = set()
    todo: list[type[BaseException]] = [errors.ProxymxError]
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return found


# ----- the mutations ------------------------------------------------------------------------

NASTY = [
    "",
    " ",
    "$(reboot)",
    "`id`; rm -rf /",
    "a'; DROP TABLE x; --",
    "x" * 70_000,
    "\u0000",
    "é\u202e\U0001f4e7",
    "i-" + "f" * 40,
    "../../etc/passwd",
    "${jndi:ldap://x}",
    "25,99999",
    "-1",
    "arn:aws:elasticloadbalancing:eu-west-1:210987654321:loadbalancer/net/other/0123456789abcdef",
]
OTHER_PLACES = {"account": ["210987654321", "", "0"], "region": ["eu-west-1", "", "us-east-1 "]}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(NASTY),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=5,
)


@st.composite
def mutants(draw: st.DrawFn, event: dict[str, Any]) -> dict[str, Any]:
    """``event`` with 1 to 3 mutations."""
    mutant = json.loads(json.dumps(event))
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["replace", "delete", "place", "identity", "rewrite"]))
        if action == "place":
            key = draw(st.sampled_from(sorted(OTHER_PLACES)))
            mutant[key] = draw(st.sampled_from(OTHER_PLACES[key]))
            continue
        if action == "identity" and isinstance(mutant.get("detail"), dict):
            # Forged caller: our own role (an "own change" that is not), or another account's.
            arn = draw(st.sampled_from([OWN_ROLE, OWN_ROLE.replace("123456789012", "210987654321")]))
            mutant["detail"]["userIdentity"] = {"type": "AssumedRole", "arn": arn}
            continue
        where = draw(st.sampled_from(paths(mutant) or [("detail",)]))
        parent: Any = mutant
        for step in where[:-1]:
            parent = parent[step]
        last = where[-1]
        if action == "delete" and isinstance(parent, dict):
            parent.pop(last, None)
        elif action == "rewrite" and isinstance(parent[last], str) and parent[last]:
            # A near miss of a real value: another account/region inside an ARN, a suffix.
            original = parent[last]
            parent[last] = draw(
                st.sampled_from(
                    [
                        original.replace("123456789012", "210987654321"),
                        original.replace("us-east-1", "eu-west-1"),
                        original + draw(st.sampled_from(["x", " ", "$(id)", "\n", "é"])),
                        original.upper(),
                    ]
                )
            )
        else:
            parent[last] = draw(values)
    return mutant


# ----- what a run did ------------------------------------------------------------------------

# The parameters that name the resource a write changes, and the function's own resources
# (from its settings, never from the event).
RESOURCE_KEYS = (
    "LoadBalancerName",
    "TargetGroupArn",
    "InstanceIds",
    "InstanceId",
    "Resources",
    "ResourceArns",
    "AutoScalingGroupName",
    "LifecycleHookName",
    "InstancePort",
)
OWN_KEYS = ("TableName", "TopicArn", "DocumentName")
INSTANCE_ID = re.compile(r"\bi-[0-9a-f]{8,17}\b")


def resources(call: AwsCall) -> list[str]:
    """The resources a write names: its resource parameters, and every instance id the request
    mentions (a DynamoDB claim's key, for one)."""
    found: list[str] = []
    for key in RESOURCE_KEYS:
        value = call.params.get(key)
        found.extend(str(v) for v in (value if isinstance(value, list) else [value]) if v is not None)
    found.extend(INSTANCE_ID.findall(json.dumps(call.params)))
    return sorted(set(found))


def target(call: AwsCall) -> tuple[str, str, str]:
    """(service, operation, the resources it writes, the function's own resource it writes)."""
    own = {key: call.params[key] for key in OWN_KEYS if key in call.params}
    return call.service, call.operation, json.dumps([resources(call), own], sort_keys=True, default=str)


def tracebacks(report: InvokeReport, domain: set[str]) -> list[str]:
    """Exceptions other than proxymx's own: raised by a handler, or logged with a traceback."""
    found = []
    for run in report.runs:
        if run.error and run.outcome == "failed" and ":" in run.error:
            name = run.error.split(":", 1)[0]
            if re.fullmatch(r"\w+", name) and name not in domain:
                found.append(f"{run.function} raised {run.error[:300]}")
    for line in report.logs.splitlines():
        if line.startswith("{") and '"exception' in line:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            name = record.get("exception_name")
            if name and name not in domain:
                found.append(f"logged {name}: {str(record.get('exception', ''))[-600:]}")
    return found


class SampleWorld:
    """One embedded world seeded for one sample; the unmutated event's writes as the reference.

    A mutant may turn an event that is ignored (a failed call, our own change, a foreign hook or
    document) into one that acts: its writes must then stay on resources the unmutated event
    itself names. A write on any other resource, or an operation the unmutated event does not
    make on a resource it does not name, is a stranger."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._stack = ExitStack()
        self._stack.enter_context(embedded_aws())
        self.event = seed_world(load_event(name))
        self.reference: set[tuple[str, str, str]] = set()
        for _ in range(2):
            report = self.run(self.event)
            self.reference |= {target(call) for call in report.aws_calls if not call.is_read}

    def run(self, event: dict[str, Any]) -> InvokeReport:
        return invoke_event(event, backend="current")

    def allows(self, call: AwsCall) -> bool:
        if target(call) in self.reference:
            return True
        text = json.dumps(self.event)
        return all(name in text for name in resources(call) if not name.isdigit())

    def close(self) -> None:
        self._stack.close()


@pytest.fixture
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The bounded backoffs (LoadBalancerNotFound, InvocationDoesNotExist) are not slept."""
    monkeypatch.setattr(time, "sleep", lambda _seconds: None)
    yield


@pytest.mark.parametrize("name", SAMPLES)
def test_a_mutated_sample_event_through_the_real_handlers(
    name: str, fuzz_seed: int, no_waiting: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the world the sample presumes, and the writes of the unmutated event in it
    world = SampleWorld(name)
    domain = _domain_exceptions()
    cases = math.ceil(settings.default.max_examples / len(SAMPLES))
    ran: list[int] = []
    try:

        @seed(fuzz_seed)
        @settings(
            max_examples=cases,
            deadline=None,
            database=None,
            # The world is not reset between cases, so a failure may not replay while shrinking:
            # report the mutant as generated.
            phases=[Phase.generate],
            report_multiple_bugs=False,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(mutants(world.event))
        def check(mutant: dict[str, Any]) -> None:
            ran.append(1)
            # When a mutant of it is invoked as `proxymx invoke` does (the template's rules)
            report = world.run(mutant)
            why = f"(sample {name}, --hypothesis-seed={fuzz_seed}, outcome {report.outcome})"
            # Then no traceback
            assert tracebacks(report, domain) == [], why
            # And rejected or ignored means no write
            writes = [call for call in report.aws_calls if not call.is_read]
            if report.outcome in ("rejected", "ignored"):
                assert writes == [], why
            # And every write is one the unmutated event makes too
            strangers = [target(call) for call in writes if not world.allows(call)]
            assert strangers == [], f"{why}: reference {sorted(world.reference)}"

        check()
        # (Hypothesis runs fewer cases only when it cannot generate more distinct ones)
        assert len(ran) >= cases * 0.9, f"{len(ran)} of {cases} cases ran"
    finally:
        world.close()
