"""Home: the function's own account and region, from its ARN; an event from elsewhere is rejected
at the edge (issue 9, finding 6)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from proxymx.errors import MalformedEvent
from proxymx.models.ssm import parse_ssm_event
from proxymx.scope import Home, from_home
from support import load_event

ARN = "arn:aws:lambda:us-east-1:123456789012:function:proxymx-CheckOutcomeFunction"


def test_home_is_read_from_the_function_arn() -> None:
    assert Home.of(SimpleNamespace(invoked_function_arn=ARN)) == Home("123456789012", "us-east-1")


@pytest.mark.parametrize("context", [None, SimpleNamespace(), SimpleNamespace(invoked_function_arn="")])
def test_without_a_function_arn_nothing_is_foreign(context: object) -> None:
    assert Home.of(context) is None
    event = parse_ssm_event(load_event("ssm-status-success"))
    assert from_home(event, Home.of(context)) is event


@pytest.mark.parametrize("field", ["account", "region"])
def test_an_event_from_another_account_or_region_is_malformed(field: str) -> None:
    # Given a status event and a function whose home differs from it in one field
    event = parse_ssm_event(load_event("ssm-status-success"))
    home = Home(event.account, event.region)
    elsewhere = Home(**{**home.__dict__, field: "999999999999" if field == "account" else "eu-west-3"})
    # Then it is accepted at home and rejected elsewhere, naming both places
    assert from_home(event, home) is event
    with pytest.raises(MalformedEvent, match="not this function's"):
        from_home(event, elsewhere)
