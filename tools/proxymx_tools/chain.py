"""The whole chain in one ``make demo`` (issue 4): control plane on the embedded AWS, data plane
on this machine.

1. A Classic ELB and an NLB target group are created in the embedded AWS; their CloudTrail
   creation events flow through the template's rules to EnableProxyProtocol.
2. What each load balancer sends is read back from the embedded AWS, and a local proxy starts
   in that mode in front of a private local Postfix (fresh Debian configuration, not yet
   configured for the PROXY protocol). The Classic ELB (policy on -> PROXY v1) is HAProxy
   ``send-proxy``. The NLB target group is the project's NLB stand-in
   (:mod:`proxymx_tools.nlb`) with ``proxy_protocol_v2.enabled`` and
   ``proxy_protocol_v2.client_to_server.header_placement`` as read back: HAProxy's
   ``send-proxy-v2`` would only ever behave like ``on_first_ack``, and a new NLB does not.
3. Auto Scaling launches an instance into ``Pending:Wait``; its lifecycle event goes through the
   rule and the queue to ConfigureInstance, whose ``SendCommand`` runs the SSM document's real
   script against the local Postfix; the invocation's status event goes to CheckOutcome, which
   completes the lifecycle action (``CONTINUE`` -> ``InService``).
4. A mail from a distinct client address goes through each proxy, and the mail log line that
   shows that address is printed.
5. The NLB's default placement (``on_first_ack_with_payload``), which proxymx never switches a
   target group into: one SMTP client gets no banner within a bounded wait longer than
   ``postscreen_upstream_proxy_timeout`` (issue 8).

Without Postfix/HAProxy (or without root, which Postfix needs), the control-plane part still
runs, with the command's outcome emulated, and the demo says what it skipped and how to get it.
Every process started here is stopped at the end, whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from proxymx.aws import Clients
from proxymx.loadbalancer.nlbheader import HEADER_PLACEMENT

from proxymx_tools.demo import Demo, DemoContext, StepResult
from proxymx_tools.nlb import DEFAULT_HEADER_PLACEMENT, HEADER_PLACEMENTS, HeaderPlacement

CLASSIC_NAME = "mx-demo-classic"
# The MX group's own load balancer (step 5): it forwards to the local Postfix's loopback port.
FLEET_ELB = "mx-demo-fleet"
NLB_NAME = "mx-demo-nlb"
TARGET_GROUP_NAME = "mx-demo-smtp"
GROUP_NAME = "mx-demo-fleet"
SMTP_PORT = 25
CLIENTS = {"v1": "127.0.0.2", "v2": "127.0.0.3"}
PROXY_NAMES = {"v1": "HAProxy for the Classic ELB", "v2": "NLB stand-in"}
DEADLOCK_CLIENT = "127.0.0.4"
# The fleet of the cutover step (issue 7.6), and how many messages it takes before and after.
CUTOVER_ELB = "mx-demo-cutover"
CUTOVER_WARM_UP = 5
# Longer than postscreen_upstream_proxy_timeout (5 s as the document sets it), so that the wait
# covers postscreen's own answer: through the default placement, even that never arrives.
DEADLOCK_WAIT = 7.0


def _data_plane_missing() -> str | None:
    """Why the data plane cannot run here, or None when it can."""
    from proxymx_tools.postfix import INSTALL_HINT, missing_tools

    missing = missing_tools()
    if missing:
        return f"missing {', '.join(missing)} (install with: {INSTALL_HINT})"
    if os.geteuid() != 0:
        return "Postfix needs root to start (run `sudo make demo`)"
    return None


def _event(context: DemoContext, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((context.events_dir / name).read_text(encoding="utf-8"))
    return data


def _invoke(context: DemoContext, event: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    from proxymx_tools.runner import invoke_event

    return invoke_event(event, backend="current", template_path=context.template_path, env_overrides=env)


def _report_line(label: str, report: Any) -> str:
    rules = ", ".join(report.matched_rules) or "(no rule)"
    calls = ", ".join(f"{c.service}.{c.operation}" for c in report.aws_calls if not c.is_read) or "none"
    return f"{label}: {rules} -> {report.outcome}; writes: {calls}"


# ----------------------------------------------------------------------------- steps


def start_world(context: DemoContext) -> StepResult:
    """Enter the embedded AWS and, when possible, start the local Postfix (not yet configured)."""
    from proxymx_tools.embedded import embedded_aws

    stack: contextlib.ExitStack = context.shared["stack"]
    lines: list[str] = []
    why_not = context.shared.get("skipped") or _data_plane_missing()
    mail_config: Path | None = None
    if why_not is None:
        from proxymx_tools.postfix import LocalPostfix

        root = Path(tempfile.mkdtemp(prefix="proxymx-demo-"))
        stack.callback(shutil.rmtree, root, True)
        postfix = LocalPostfix(root / "postfix")
        stack.callback(postfix.stop)
        postfix.start()
        context.shared.update(postfix=postfix, root=root)
        mail_config = postfix.config_dir
        lines.append(
            f"local Postfix {postfix.postconf('-h', 'mail_version').strip()} on {postfix.smtp_service}"
        )
        lines.append(f"  MAIL_CONFIG={mail_config}, log {postfix.maillog}")
        lines.append(f"  smtp-sink (the next hop) on 127.0.0.1:{postfix.sink.port if postfix.sink else '?'}")
    else:
        context.shared["skipped"] = why_not
        lines.append(f"data plane skipped: {why_not}")
    world = stack.enter_context(embedded_aws(mail_config=mail_config, template_path=context.template_path))
    context.shared["world"] = world
    # The demo's own reads and writes (as a user would make them), on the embedded AWS.
    context.shared["clients"] = Clients()
    kind = "real document on the local Postfix" if mail_config else "emulated command outcomes"
    lines.append(f"embedded AWS (moto, in-process) in {world.region}; SSM commands: {kind}")
    return StepResult("ok", "embedded AWS up" + ("" if why_not else ", local Postfix up"), lines)


def create_load_balancers(context: DemoContext) -> StepResult:
    """Create a Classic ELB and an NLB target group as a user would; route their events."""
    clients: Clients = context.shared["clients"]
    elb, elbv2, ec2 = clients.client("elb"), clients.client("elbv2"), clients.client("ec2")
    lines: list[str] = []

    listeners = [
        {
            "Protocol": "TCP",
            "LoadBalancerPort": SMTP_PORT,
            "InstanceProtocol": "TCP",
            "InstancePort": SMTP_PORT,
        }
    ]
    elb.create_load_balancer(
        LoadBalancerName=CLASSIC_NAME, Listeners=listeners, AvailabilityZones=["us-east-1a"]
    )
    classic_event = _event(context, "elb-create-smtp.json")
    request = classic_event["detail"]["requestParameters"]
    request["loadBalancerName"] = CLASSIC_NAME
    request["listeners"] = [
        {
            "protocol": "TCP",
            "loadBalancerPort": SMTP_PORT,
            "instanceProtocol": "TCP",
            "instancePort": SMTP_PORT,
        }
    ]
    classic_report = _invoke(context, classic_event)
    lines.append(_report_line(f"Classic ELB {CLASSIC_NAME} created", classic_report))

    vpc = ec2.create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]  # embedded AWS only: no traffic
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.99.{i}.0/24", AvailabilityZone=f"us-east-1{z}")["Subnet"][
            "SubnetId"
        ]
        for i, z in enumerate("ab")
    ]
    nlb_arn = elbv2.create_load_balancer(Name=NLB_NAME, Type="network", Subnets=subnets)["LoadBalancers"][0][
        "LoadBalancerArn"
    ]
    # ip targets: the client's address is hidden, the header is needed (instance targets with
    # preserve_client_ip.enabled=true would be compliant without it: loadbalancer.nlbheader).
    group = elbv2.create_target_group(
        Name=TARGET_GROUP_NAME, Protocol="TCP", Port=SMTP_PORT, VpcId=vpc, TargetType="ip"
    )["TargetGroups"][0]
    elbv2.create_listener(
        LoadBalancerArn=nlb_arn,
        Protocol="TCP",
        Port=SMTP_PORT,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": group["TargetGroupArn"]}],
    )
    tg_event = _event(context, "nlb-create-target-group.json")
    detail = tg_event["detail"]
    detail["requestParameters"].update(name=TARGET_GROUP_NAME, protocol="TCP", port=SMTP_PORT, vpcId=vpc)
    response_groups = detail.get("responseElements", {}).get("targetGroups") or [{}]
    response_groups[0] = {
        **response_groups[0],
        "targetGroupArn": group["TargetGroupArn"],
        "targetGroupName": TARGET_GROUP_NAME,
        "port": SMTP_PORT,
        "protocol": "TCP",
        "vpcId": vpc,
    }
    detail.setdefault("responseElements", {})["targetGroups"] = response_groups
    tg_report = _invoke(context, tg_event)
    lines.append(_report_line(f"NLB target group {TARGET_GROUP_NAME} created", tg_report))
    context.shared["target_group_arn"] = group["TargetGroupArn"]

    outcomes = {classic_report.outcome, tg_report.outcome}
    if outcomes != {"changed"}:
        errors = "; ".join(r.error for r in (classic_report, tg_report) if r.error)
        return StepResult(
            "failed", f"expected both load balancers changed, got {sorted(outcomes)} {errors}", lines
        )
    return StepResult(
        "ok", "Proxy Protocol switched on: Classic ELB policy (v1), NLB target group (v2)", lines
    )


def proxy_modes(context: DemoContext) -> dict[str, str]:
    """What each load balancer sends, read from the embedded AWS (not assumed)."""
    clients: Clients = context.shared["clients"]
    modes = {"v1": "off", "v2": "off"}
    elb = clients.client("elb")
    description = elb.describe_load_balancers(LoadBalancerNames=[CLASSIC_NAME])["LoadBalancerDescriptions"][0]
    policies_on_port = {
        name
        for backend in description.get("BackendServerDescriptions", [])
        if backend.get("InstancePort") == SMTP_PORT
        for name in backend.get("PolicyNames", [])
    }
    if policies_on_port:
        described = elb.describe_load_balancer_policies(
            LoadBalancerName=CLASSIC_NAME, PolicyNames=sorted(policies_on_port)
        )["PolicyDescriptions"]
        for policy in described:
            attributes = {
                a["AttributeName"]: a["AttributeValue"] for a in policy.get("PolicyAttributeDescriptions", [])
            }
            if (
                policy.get("PolicyTypeName") == "ProxyProtocolPolicyType"
                and attributes.get("ProxyProtocol") == "true"
            ):
                modes["v1"] = "v1"
    if target_group_attributes(context).get("proxy_protocol_v2.enabled") == "true":
        modes["v2"] = "v2"
    return modes


def target_group_attributes(context: DemoContext) -> dict[str, str]:
    """The demo target group's attributes as DescribeTargetGroupAttributes returns them."""
    clients: Clients = context.shared["clients"]
    attributes = clients.client("elbv2").describe_target_group_attributes(
        TargetGroupArn=context.shared["target_group_arn"]
    )
    return {a["Key"]: a["Value"] for a in attributes["Attributes"]}


def header_placement(attributes: dict[str, str]) -> HeaderPlacement:
    """The placement an NLB uses for this target group: an absent attribute is AWS's default."""
    value = attributes.get(HEADER_PLACEMENT, DEFAULT_HEADER_PLACEMENT)
    for placement in HEADER_PLACEMENTS:
        if placement == value:
            return placement
    raise ValueError(f"unknown {HEADER_PLACEMENT} {value!r}")


def start_proxies(context: DemoContext) -> StepResult:
    modes = proxy_modes(context)
    attributes = target_group_attributes(context)
    placement = header_placement(attributes)
    lines = [
        f"Classic ELB {CLASSIC_NAME}: sends {'PROXY v1' if modes['v1'] == 'v1' else 'no header'}",
        f"NLB target group {TARGET_GROUP_NAME}: sends {'PROXY v2' if modes['v2'] == 'v2' else 'no header'}",
        f"  read back: proxy_protocol_v2.enabled={attributes.get('proxy_protocol_v2.enabled', 'false')}, "
        f"{HEADER_PLACEMENT}={placement}",
    ]
    if "skipped" in context.shared:
        return StepResult("skipped", f"no proxies started: {context.shared['skipped']}", lines)
    from proxymx_tools.haproxy import LocalHaproxy
    from proxymx_tools.nlb import LocalNlb, TargetGroup

    postfix = context.shared["postfix"]
    stack: contextlib.ExitStack = context.shared["stack"]
    classic = LocalHaproxy(
        context.shared["root"] / "haproxy",
        backend_port=postfix.smtp_port,
        mode="v1" if modes["v1"] == "v1" else "off",
    )
    stack.callback(classic.stop)
    classic.start()
    option = {"v1": "send-proxy", "off": "(plain TCP)"}[modes["v1"]]
    lines.append(
        f"HAProxy 127.0.0.1:{classic.port} -> {postfix.smtp_service} {option}"
        "  (stands in for the Classic ELB, v1)"
    )
    # ip targets, as the demo's target group: the stand-in connects from its own address, so the
    # client's address can only reach Postfix in the header. Health checks are left out here
    # (tests/dataplane/test_nlb_standin.py covers them).
    nlb = LocalNlb(
        TargetGroup(
            postfix.smtp_port,
            proxy_protocol_v2=modes["v2"] == "v2",
            header_placement=placement,
            target_type="ip",
            health_check=None,
        )
    )
    stack.callback(nlb.stop)
    nlb.start()
    lines.append(
        f"NLB stand-in 127.0.0.1:{nlb.port} -> {postfix.smtp_service} "
        f"{'PROXY v2, ' + placement if modes['v2'] == 'v2' else '(plain TCP)'}, ip target"
        "  (stands in for the NLB, v2)"
    )
    lines.append("  (HAProxy send-proxy-v2 stands in for on_first_ack only: not used for the NLB)")
    context.shared["proxies"] = {"v1": classic, "v2": nlb}
    return StepResult(
        "ok",
        f"proxies derived from the load balancers' state: {modes['v1']}, {modes['v2']} ({placement})",
        lines,
    )


def launch_instance(context: DemoContext) -> StepResult:
    """Scale out into Pending:Wait; ConfigureInstance -> SSM -> CheckOutcome -> CONTINUE."""
    from proxymx.config import load_settings

    from proxymx_tools import seed_launch
    from proxymx_tools.runner import function_env
    from proxymx_tools.template import load_template

    world = context.shared["world"]
    template = load_template(context.template_path)
    env = function_env(template, "ConfigureInstanceFunction")
    settings = load_settings(env)
    hook = settings.lifecycle_hook_names[0] if settings.lifecycle_hook_names else "proxymx-postfix-launch"
    seed_launch.ensure_group(GROUP_NAME, hook)
    seed_launch.ensure_document(settings.document_name)
    lines: list[str] = []
    overrides: dict[str, str] = {}
    if "postfix" in context.shared:
        # The instance's SMTP service is the local Postfix's loopback port (port 25 in AWS).
        overrides["SMTP_PORTS"] = str(context.shared["postfix"].smtp_port)
    if "postfix" in context.shared:
        # The launch side configures an instance for what its group's load balancers SEND (issue
        # 7.4): put the group behind a Classic ELB that sends PROXY v1 to the local Postfix's port,
        # as the one of step 3 does to port 25 in AWS. With no load balancer the instance would
        # rightly be left plain (Mode=revert).
        port = context.shared["postfix"].smtp_port
        clients: Clients = context.shared["clients"]
        elb = clients.elb
        elb.create_load_balancer(
            LoadBalancerName=FLEET_ELB,
            Listeners=[
                {"Protocol": "TCP", "LoadBalancerPort": 25, "InstanceProtocol": "TCP", "InstancePort": port}
            ],
            AvailabilityZones=["us-east-1a"],
        )
        elb.create_load_balancer_policy(
            LoadBalancerName=FLEET_ELB,
            PolicyName="proxymx-ProxyProtocol",
            PolicyTypeName="ProxyProtocolPolicyType",
            PolicyAttributes=[{"AttributeName": "ProxyProtocol", "AttributeValue": "true"}],
        )
        elb.set_load_balancer_policies_for_backend_server(
            LoadBalancerName=FLEET_ELB, InstancePort=port, PolicyNames=["proxymx-ProxyProtocol"]
        )
        clients.autoscaling.attach_load_balancers(
            AutoScalingGroupName=GROUP_NAME, LoadBalancerNames=[FLEET_ELB]
        )
        lines.append(f"group {GROUP_NAME} behind Classic ELB {FLEET_ELB}: PROXY v1 on instance port {port}")
    events = world.launch.launch_into_wait(GROUP_NAME, hook, 1)
    instance_id = events[0]["detail"]["EC2InstanceId"]
    lines.append(
        f"instance {instance_id} launched into {world.launch.lifecycle_state(instance_id)} (hook {hook})"
    )
    report = _invoke(context, events[0], overrides)
    lines.append(_report_line("lifecycle event", report))
    status_events = world.launch.drain_status_events()
    if not status_events:
        return StepResult("failed", f"no SSM command finished ({report.error or report.outcome})", lines)
    for status_event in status_events:
        detail = status_event["detail"]
        lines.append(
            f"SSM invocation {detail['command-id'][:8]}... on {detail['instance-id']}: {detail['status']}"
        )
        invocation = _last_invocation(context.shared["clients"], detail["command-id"], detail["instance-id"])
        if invocation:
            lines.append(f"  script summary: {invocation}")
        outcome_report = _invoke(context, status_event, overrides)
        lines.append(_report_line("status event", outcome_report))
    state = world.launch.lifecycle_state(instance_id)
    lines.append(f"instance {instance_id} is now {state}")
    if state != "InService":
        return StepResult("failed", f"instance ended {state}, expected InService", lines)
    return StepResult("ok", f"{instance_id}: Pending:Wait -> configured -> CONTINUE -> InService", lines)


def _last_invocation(clients: Clients, command_id: str, instance_id: str) -> str | None:
    output = clients.ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
    lines = [line for line in output.get("StandardOutputContent", "").splitlines() if line.strip()]
    return lines[-1] if lines else None


def send_mail(context: DemoContext) -> StepResult:
    if "skipped" in context.shared:
        return StepResult("skipped", f"no mail sent: {context.shared['skipped']}", [])
    postfix = context.shared["postfix"]
    proxies = context.shared["proxies"]
    lines: list[str] = []
    failures: list[str] = []
    for label, proxy in proxies.items():
        client = CLIENTS[label]
        since = postfix.log_offset()
        done = subprocess.run(
            [
                "swaks",
                "--server",
                f"127.0.0.1:{proxy.port}",
                "--local-interface",
                client,
                "--from",
                f"sender@{label}.example.net",
                "--to",
                "postmaster@example.org",
                "--header",
                f"Subject: proxymx demo through the {label} load balancer",
                "--timeout",
                "30",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            failures.append(f"{label}: swaks exited {done.returncode}")
            lines.append(f"swaks from {client} via {label} failed: {done.stdout.strip().splitlines()[-1:]}")
            continue
        try:
            connect = postfix.wait_for_log(
                rf"postscreen\[\d+\]: CONNECT from \[{client}\]:\d+ to \S+", since=since
            )
            smtpd = postfix.wait_for_log(rf"smtpd\[\d+\]: connect from \S*\[{client}\]", since=since)
        except TimeoutError as exc:
            failures.append(f"{label}: {exc}".splitlines()[0])
            continue
        lines.append(
            f"mail from {client} through the {label} proxy ({PROXY_NAMES[label]}); the mail log says:"
        )
        lines.append(f"  {_log_line(postfix.log_text(), connect.start())}")
        lines.append(f"  {_log_line(postfix.log_text(), smtpd.start())}")
    if postfix.sink is not None:
        arrived = postfix.sink.wait_for_count(len(proxies), timeout=30)
        lines.append(f"{arrived} message(s) reached the next hop (smtp-sink)")
    if failures:
        return StepResult("failed", "; ".join(failures), lines)
    return StepResult("ok", "Postfix logged each client's own address, not the proxy's (127.0.0.1)", lines)


def _log_line(text: str, offset: int) -> str:
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return text[start : end if end != -1 else len(text)]


def _seconds(value: str) -> float:
    """A Postfix time value (``5s``, ``2m``, ``300``) in seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", value)
    if match is None:
        raise ValueError(f"not a Postfix time value: {value!r}")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
    return float(int(match.group(1)) * unit)


def default_placement(context: DemoContext) -> StepResult:
    """What ``on_first_ack_with_payload`` does to SMTP: the server speaks first, its bytes are lost."""
    if "skipped" in context.shared:
        return StepResult("skipped", f"not shown: {context.shared['skipped']}", [])
    from proxymx_tools.nlb import LocalNlb, TargetGroup

    postfix = context.shared["postfix"]
    proxy_timeout = _seconds(postfix.postconf("-h", "postscreen_upstream_proxy_timeout"))
    wait = max(DEADLOCK_WAIT, proxy_timeout + 2)
    nlb = LocalNlb(
        TargetGroup(
            postfix.smtp_port,
            proxy_protocol_v2=True,
            header_placement="on_first_ack_with_payload",
            target_type="ip",
            health_check=None,
        )
    )
    context.shared["stack"].callback(nlb.stop)
    nlb.start()
    lines = [
        f"NLB stand-in 127.0.0.1:{nlb.port} -> {postfix.smtp_service} PROXY v2, on_first_ack_with_payload "
        f"(AWS's default); postscreen_upstream_proxy_timeout={proxy_timeout:g}s"
    ]
    since = postfix.log_offset()
    started = time.monotonic()
    banner = b""
    # The client waits for 220 as an SMTP client does; it sends nothing first.
    with (
        socket.create_connection(
            ("127.0.0.1", nlb.port), timeout=wait, source_address=(DEADLOCK_CLIENT, 0)
        ) as client,
        contextlib.suppress(TimeoutError),
    ):
        banner = client.recv(1024)
    waited = time.monotonic() - started
    nlb.stop()
    stats = nlb.group.stats
    if banner:
        return StepResult("failed", f"a banner arrived after {waited:.1f}s: {banner[:60]!r}", lines)
    if waited < wait - 0.5:
        return StepResult("failed", f"the connection ended after {waited:.1f}s, not the deadlock", lines)
    lines.append(
        f"client {DEADLOCK_CLIENT}: no banner within {waited:.1f}s (it would wait until its own timeout)"
    )
    try:
        timeout_line = postfix.wait_for_log(
            r"postscreen\[\d+\]: warning: haproxy read: time limit exceeded", since=since, timeout=5
        )
        lines.append("  the mail log says:")
        lines.append(f"  {_log_line(postfix.log_text(), timeout_line.start())}")
    except TimeoutError:
        lines.append("  (postscreen logged no header timeout)")
    if stats.target_bytes_dropped:
        first = (
            stats.dropped_from_target.splitlines()[0].decode(errors="replace")
            if stats.dropped_from_target
            else ""
        )
        lines.append(f"  Postfix's answer, dropped by the NLB before the client's first byte: {first!r}")
    return StepResult("ok", "deadlock, as proxymx prevents (it sets on_first_ack, or does not enable)", lines)


def fleet_cutover(context: DemoContext) -> StepResult:
    """A fleet already taking mail turns to the PROXY protocol, fleet first, under load (issue 7.6).

    Two local Postfix instances (not configured) behind HAProxy round-robin, which follows a
    Classic ELB's backend policy on the embedded AWS; four senders keep sending. The production
    chain does the rest: EnableProxyProtocol is blocked by the interlock and starts the cutover
    (SendCommand Mode=configure), the embedded SSM runs the document's real script on each member,
    each status event goes to CheckOutcome, and the last proof switches the ELB.
    """
    if "skipped" in context.shared:
        return _control_plane_cutover(context)
    from proxymx_tools.cutover_wire import CutoverBench, MailLoad

    clients: Clients = context.shared["clients"]
    stack: contextlib.ExitStack = context.shared["stack"]
    world = context.shared["world"]
    bench = CutoverBench(context.shared["root"] / "cutover", elb_name=CUTOVER_ELB)
    stack.callback(bench.stop)
    bench.start(clients.elb)
    bench.use_real_documents(world.launch)
    lines = [
        f"Classic ELB {CUTOVER_ELB}: listener 25 -> instance port {bench.fleet.port}, "
        f"instances {', '.join(bench.instance_ids)} (proxymx:fleet=mx, never configured)",
        f"  HAProxy 127.0.0.1:{bench.proxy.port} round-robin -> "
        + ", ".join(f"{p.smtp_service}" for p in bench.fleet.members)
        + " (plain; it follows the ELB's backend policy)",
    ]
    load = MailLoad(bench.proxy.port).start()
    stack.callback(load.stop)
    load.wait_for(CUTOVER_WARM_UP)
    lines.append(
        f"4 senders (127.0.0.2-5) through it: {len(load.counts.accepted)} message(s) accepted so far"
    )
    lines += _run_cutover_chain(context, "real document")
    try:
        bench.wait_switched()
    except TimeoutError as exc:
        load.stop()
        return StepResult("failed", str(exc), lines)
    lines.append(f"HAProxy reloaded gracefully: send-proxy ({bench.timeline.describe()})")
    load.wait_for(len(load.counts.accepted) + CUTOVER_WARM_UP)
    load.stop()
    counts = load.counts
    delivered = bench.fleet.wait_delivered(counts.accepted)
    gap = bench.timeline.gap or 0.0
    lines.append(
        f"submitted {counts.submitted}, accepted {len(counts.accepted)}, delivered {len(set(delivered))}, "
        f"bounced {len(counts.bounced)}, 5xx {counts.replies_5xx}, 421 {counts.replies_421} (retried)"
    )
    lines.append(
        f"gap (first member proven -> header on): {gap:.1f}s "
        "(the embedded SSM runs the members one after the other; SSM runs them in parallel)"
    )
    window = counts.window_421 or 0.0
    lines.append(f"421 window at the senders (first -> last session deferred): {window:.1f}s")
    lost = counts.accepted - set(delivered)
    if counts.replies_5xx or counts.bounced or lost or counts.submitted != len(counts.accepted):
        return StepResult(
            "failed", f"mail lost: {len(lost)} undelivered, {len(counts.bounced)} bounced", lines
        )
    return StepResult(
        "ok",
        f"every message delivered, 0 5xx, {counts.replies_421} 421, gap {gap:.1f}s",
        lines,
    )


def _run_cutover_chain(context: DemoContext, kind: str) -> list[str]:
    """The production chain of a cutover on the demo's Classic ELB: EnableProxyProtocol (blocked,
    cutover started) -> the embedded SSM's command -> each status event to CheckOutcome."""
    from proxymx.config import load_settings
    from proxymx.launch.outcome import check_outcome
    from proxymx.loadbalancer.service import EnableProxyProtocol, cutovers_for
    from proxymx.models.ssm import parse_ssm_event

    from proxymx_tools.embedded import STATE_TABLE_NAME
    from proxymx_tools.seed_launch import ensure_document

    clients: Clients = context.shared["clients"]
    world = context.shared["world"]
    settings = load_settings({"STATE_TABLE": STATE_TABLE_NAME})
    ensure_document(settings.document_name)
    service_clients = Clients()
    service = EnableProxyProtocol(
        settings, service_clients, sleep=lambda _s: None, cutovers=cutovers_for(settings, service_clients)
    )
    started = service.ensure_classic(CUTOVER_ELB)
    lines = [f"EnableProxyProtocol -> {started.outcome}: {started.reason}"]
    while status_events := world.launch.drain_status_events():
        for status_event in status_events:
            detail = status_event["detail"]
            summary = _last_invocation(clients, detail["command-id"], detail["instance-id"]) or "{}"
            instance = detail["instance-id"]
            lines.append(f"SSM ({kind}) on {instance}: {detail['status']}; {_brief_summary(summary)}")
            report = check_outcome(parse_ssm_event(status_event), settings, Clients(), sleep=lambda _s: None)
            lines.append(f"  CheckOutcome -> {report.decision}")
    return lines


def _control_plane_cutover(context: DemoContext) -> StepResult:
    """Without the data plane: the same chain on the embedded AWS, each run emulated by a document
    stand-in that proves what it is asked; no mail flows, so nothing is counted."""
    from proxymx_tools.cutover_wire import classic_sends_v1
    from proxymx_tools.embedded import ObedientDocument
    from proxymx_tools.seed import register_fleet_instances

    clients: Clients = context.shared["clients"]
    world = context.shared["world"]
    clients.elb.create_load_balancer(
        LoadBalancerName=CUTOVER_ELB,
        Listeners=[
            {"Protocol": "TCP", "LoadBalancerPort": 25, "InstanceProtocol": "TCP", "InstancePort": 25}
        ],
        AvailabilityZones=["us-east-1a"],
    )
    ids = register_fleet_instances(CUTOVER_ELB, 2)
    for instance_id in ids:
        world.launch.register_instance(instance_id)
        world.launch.script_outcome(ObedientDocument(), instance_id)
    lines = [f"Classic ELB {CUTOVER_ELB}: listener 25 -> 25, instances {', '.join(ids)} (proxymx:fleet=mx)"]
    lines += _run_cutover_chain(context, "emulated document")
    if not classic_sends_v1(clients.elb, CUTOVER_ELB, 25):
        return StepResult("failed", "the ELB was not switched after the last proof", lines)
    lines.append(f"no mail counted: {context.shared['skipped']}")
    return StepResult("ok", "control plane only: blocked -> fleet configured (emulated) -> switched", lines)


def _brief_summary(line: str) -> str:
    """The summary's result, mode and ports (the launch step shows a whole summary line)."""
    try:
        data = json.loads(line)
    except ValueError:
        return line[:120]
    return f"result={data.get('result')} mode={data.get('mode')} ports={data.get('smtp_ports')}"


def add_chain(demo: Demo) -> None:
    demo.add("start the embedded AWS and the local Postfix (the instance)", start_world)
    demo.add("create a Classic ELB and an NLB target group -> EnableProxyProtocol", create_load_balancers)
    demo.add(
        "derive each proxy's mode from the load balancers; start HAProxy and the NLB stand-in", start_proxies
    )
    demo.add("launch an instance -> ConfigureInstance -> SSM Run Command -> CheckOutcome", launch_instance)
    demo.add("send mail through each proxy from distinct client addresses", send_mail)
    demo.add("the NLB's default placement, which proxymx never sets: one SMTP client", default_placement)
    demo.add("cut over a fleet that takes mail: blocked -> fleet configured -> switched", fleet_cutover)
