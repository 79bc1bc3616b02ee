"""Fuzzing every sample event at the functions' edge (issue 9, "keep it that way"): a mutated event
(types, missing and huge fields, unicode, shell metacharacters, forged identities, other accounts
and regions) is either parsed or rejected with MalformedEvent naming the field — never another
exception (a traceback), since the handlers rely on MalformedEvent to reject without an AWS call.

Reproducible: derandomized with a fixed database-free seed; 1,000 cases per run."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from proxymx.errors import MalformedEvent
from proxymx.models.attach import parse_load_balancer_event
from proxymx.models.cloudtrail import parse_elb_event
from proxymx.models.lifecycle import parse_lifecycle_event
from proxymx.models.ssm import parse_ssm_event
from support import EVENTS_DIR, load_event, paths

PARSERS: dict[str, Callable[[Any], Any]] = {
    "aws.elasticloadbalancing": parse_elb_event,
    # Lifecycle events (the launch flow) and attach API calls (EnableProxyProtocol) share the source.
    "aws.autoscaling": lambda event: (
        parse_load_balancer_event(event)
        if isinstance(event, dict) and event.get("detail-type") == "AWS API Call via CloudTrail"
        else parse_lifecycle_event(event)
    ),
    "aws.ssm": parse_ssm_event,
}
SAMPLES = {
    path.stem: load_event(path.stem)
    for path in sorted(EVENTS_DIR.glob("*.json"))
    if path.stem != "expected" and load_event(path.stem).get("source") in PARSERS
}

nasty_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["", " ", "$(reboot)", "`id`; rm -rf /", "a" * 100_000, "\u0000", "é\u202e", "i-" + "f" * 40]
    ),
)
values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), nasty_text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(sorted(SAMPLES)))
    event = copy.deepcopy(SAMPLES[name])
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(paths(event) or [("detail",)]))
        parent: Any = event
        for step in where[:-1]:
            parent = parent[step]
        last = where[-1]
        action = draw(st.sampled_from(["replace", "delete", "identity"]))
        if action == "delete" and isinstance(parent, dict):
            parent.pop(last, None)
        elif action == "identity":
            event[draw(st.sampled_from(["account", "region"]))] = draw(
                st.sampled_from(["210987654321", "eu-west-1", ""])
            )
        else:
            parent[last] = draw(values)
    return name, event


@seed(20261130)
@settings(max_examples=1000, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_a_mutated_event_is_parsed_or_rejected_never_a_traceback(case: tuple[str, dict[str, Any]]) -> None:
    name, event = case
    parser = PARSERS[SAMPLES[name]["source"]]
    try:
        parser(event)
    except MalformedEvent as exc:
        assert str(exc)
