"""`proxymx invoke` rejects a malformed event before anything is seeded (issue 9, finding 9)."""

from __future__ import annotations

from typing import Any

import proxymx_tools.seed as seed_module
import pytest
from proxymx_tools.runner import invoke_event
from support import EVENTS_DIR, load_event

MALFORMED = sorted(path.stem for path in EVENTS_DIR.glob("malformed-*.json"))


@pytest.fixture
def no_seeding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(event: Any) -> Any:
        raise AssertionError("seeded a malformed event")

    monkeypatch.setattr(seed_module, "seed_world", refuse)


@pytest.mark.parametrize("name", MALFORMED)
def test_a_malformed_sample_event_is_rejected_before_seeding(no_seeding: None, name: str) -> None:
    # When a malformed sample event is invoked on the embedded AWS
    report = invoke_event(load_event(name))
    # Then it is rejected (exit 3), with the field named, and nothing was seeded or called
    assert (report.outcome, report.exit_code) == ("rejected", 3)
    assert report.error
    assert report.aws_calls == []


def test_a_mutated_event_that_broke_the_seeder_is_rejected(no_seeding: None) -> None:
    # Given a creation event whose load balancer name is a number (a mutation the seeder choked on)
    event = load_event("elb-create-smtp")
    event["detail"]["requestParameters"]["loadBalancerName"] = {"nested": ["not", "a", "name"]}
    # When it is invoked, then it is rejected, not failed
    report = invoke_event(event)
    assert (report.outcome, report.exit_code) == ("rejected", 3)


def test_a_well_formed_event_is_still_seeded_and_run() -> None:
    report = invoke_event(load_event("elb-create-smtp"))
    assert report.outcome == "changed"
