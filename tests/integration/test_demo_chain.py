"""``make demo``'s chain without the data plane: the control plane alone must still run end to end."""

from __future__ import annotations

import contextlib
import io

from proxymx_tools import demo
from proxymx_tools import template as tpl
from proxymx_tools.chain import add_chain


def test_the_chain_runs_on_the_embedded_aws_alone_and_says_what_it_skipped() -> None:
    # Given a machine where the data plane is not wanted
    out = io.StringIO()
    context = demo.DemoContext(
        template_path=tpl.DEFAULT_TEMPLATE, events_dir=tpl.DEFAULT_TEMPLATE.parent / "events", out=out
    )
    context.shared["skipped"] = "--no-data-plane was given"
    chain_only = demo.Demo()
    add_chain(chain_only)

    # When the chain runs
    with contextlib.ExitStack() as stack:
        context.shared["stack"] = stack
        code = chain_only.run(context)

    # Then the load balancers were switched on and the instance went InService, and the skipped
    # data-plane steps say why
    text = out.getvalue()
    assert code == 0, text
    assert "Proxy Protocol switched on" in text
    assert "-> configured -> CONTINUE -> InService" in text
    assert text.count("SKIPPED") >= 2
    assert "--no-data-plane was given" in text
    # and the cutover step still shows the chain: blocked, both members proven, the ELB switched
    assert "cutover started: 2 target(s) being configured" in text
    assert text.count("SSM (emulated document) on i-") == 2
    assert text.count("CheckOutcome -> cutover-progress") == 2
    assert "control plane only: blocked -> fleet configured (emulated) -> switched" in text
