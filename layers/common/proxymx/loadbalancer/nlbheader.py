"""NLB target groups: where the v2 header goes, and whether it is needed at all. Pure decisions.

Rules (issue 8; docs/loadbalancers.md "NLB: header placement and preserved client address"):

1. **Never switch a target group into the deadlock.** With ``proxy_protocol_v2.enabled=true`` an
   NLB sends the header, by default, only with the client's first payload
   (``proxy_protocol_v2.client_to_server.header_placement=on_first_ack_with_payload``); bytes the
   target sends before that are dropped. SMTP servers speak first: the sender waits for ``220``,
   postscreen waits for the header, every session hangs. Only ``on_first_ack`` (header as soon as
   the connection is acknowledged) works, and AWS Support has to allow it for the account.
   Sources: the go-proxyproto README's AWS notes (pires/go-proxyproto#25), TiDB's NLB note
   (pingcap/docs#10455), hashicorp/terraform-provider-aws#19766 and #41450 ("you are not allowed
   to change this attribute without first whitelisting your account with AWS support"; "you
   cannot query this attribute": an ABSENT key therefore means the default placement).
   So: placement already ``on_first_ack`` -> enable; otherwise send ``enabled=true`` AND
   ``on_first_ack`` in ONE ModifyTargetGroupAttributes call (AWS applies a call's attributes
   together or refuses the call), and when AWS refuses -> nothing enabled, ``blocked``.
2. **Header on, placement not ``on_first_ack``** (switched on by hand) -> ``broken``: proxymx
   tries to set ``on_first_ack`` (drift repair); refused -> stays broken, loudly. It does not
   switch the header off: the instances behind it expect it (the agreement's business).
3. **Is the header needed?** ``preserve_client_ip.enabled`` (AWS, "Edit target group attributes
   for your Network Load Balancer": defaults *instance* targets -> enabled; *ip* targets with TCP
   or TLS -> disabled). With instance targets, TCP (group and every listener forwarding to it)
   and preservation on, Postfix already sees the client's address in the connection itself ->
   the header stays off (``compliant: client address preserved``) unless the setting
   ``proxy_protocol_when_client_ip_preserved`` asks for it anyway. IP targets, TLS, or
   preservation off hide the address -> the header is needed. So does a dualstack NLB in front
   (same AWS page: IPv6 clients reach instance targets with the load balancer's IPv4 address).
   Not checked: PrivateLink traffic always carries the NLB's address; such operators set the
   parameter (docs/loadbalancers.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from proxymx.frozen import frozen

PROXY_PROTOCOL_V2 = "proxy_protocol_v2.enabled"
HEADER_PLACEMENT = "proxy_protocol_v2.client_to_server.header_placement"
ON_FIRST_ACK = "on_first_ack"
# The default: what an account gets without AWS Support, and what an absent key means.
ON_FIRST_ACK_WITH_PAYLOAD = "on_first_ack_with_payload"
HEADER_PLACEMENTS = frozenset({ON_FIRST_ACK, ON_FIRST_ACK_WITH_PAYLOAD})
PRESERVE_CLIENT_IP = "preserve_client_ip.enabled"
CLIENT_ADDRESS_PRESERVED = "client address preserved"

# What AWS answers when the account may not set the placement. No public source quotes the
# error: ValidationError (unknown/forbidden attribute key or value) and
# InvalidConfigurationRequest (ELBv2's "not allowed for this configuration") are ASSUMPTIONS;
# any of them on a call that carries the placement means "refused".
PLACEMENT_REFUSED_CODES = frozenset(
    {"ValidationError", "InvalidConfigurationRequest", "InvalidConfigurationRequestException"}
)

HeaderAction = Literal["compliant", "preserved", "enable", "broken"]


@frozen
class HeaderAttributes:
    """What one DescribeTargetGroupAttributes (plus the group's TargetType) says."""

    enabled: bool
    placement: str
    preserve_client_ip: bool
    target_type: str

    @property
    def placement_safe(self) -> bool:
        return self.placement == ON_FIRST_ACK


def preserve_client_ip_default(target_type: str | None, protocol: str | None) -> bool:
    """AWS's default when the attribute is not returned (instance: on; ip + TCP/TLS: off)."""
    if (target_type or "instance") == "instance":
        return True
    return (protocol or "").upper() not in ("TCP", "TLS")


def header_attributes(
    values: Mapping[str, str], target_type: str | None, protocol: str | None
) -> HeaderAttributes:
    def flag(key: str, default: bool) -> bool:
        value = values.get(key)
        return default if value is None else value.strip().lower() == "true"

    return HeaderAttributes(
        enabled=flag(PROXY_PROTOCOL_V2, False),
        placement=(values.get(HEADER_PLACEMENT) or ON_FIRST_ACK_WITH_PAYLOAD).strip(),
        preserve_client_ip=flag(PRESERVE_CLIENT_IP, preserve_client_ip_default(target_type, protocol)),
        target_type=target_type or "instance",
    )


def client_address_preserved(
    attributes: HeaderAttributes,
    protocol: str | None,
    listener_protocols: Sequence[str] = (),
    load_balancer_ip_address_types: Sequence[str] = (),
) -> bool:
    """Postfix sees the client's own address without a header (rule 3)."""
    return (
        attributes.target_type == "instance"
        and (protocol or "").upper() == "TCP"
        and all(p.upper() == "TCP" for p in listener_protocols)
        and not any(t.startswith("dualstack") for t in load_balancer_ip_address_types)
        and attributes.preserve_client_ip
    )


def may_be_preserved(attributes: HeaderAttributes, protocol: str | None) -> bool:
    """Worth reading the load balancers' IpAddressType (only then: no extra call otherwise)."""
    return client_address_preserved(attributes, protocol) and not attributes.enabled


@frozen
class HeaderDecision:
    action: HeaderAction
    reason: str
    # The ONE ModifyTargetGroupAttributes call to make (empty: no write).
    write: tuple[tuple[str, str], ...] = ()


def decide_header(
    attributes: HeaderAttributes,
    protocol: str | None,
    listener_protocols: Sequence[str] = (),
    load_balancer_ip_address_types: Sequence[str] = (),
    *,
    when_client_ip_preserved: bool = False,
) -> HeaderDecision:
    if attributes.enabled:
        if attributes.placement_safe:
            return HeaderDecision("compliant", f"{PROXY_PROTOCOL_V2} on, {HEADER_PLACEMENT}={ON_FIRST_ACK}")
        return HeaderDecision(
            "broken",
            f"header on with {HEADER_PLACEMENT}={attributes.placement}: SMTP sessions hang "
            "(the server speaks first, the NLB holds the header until the client sends)",
            ((HEADER_PLACEMENT, ON_FIRST_ACK),),
        )
    preserved = client_address_preserved(
        attributes, protocol, listener_protocols, load_balancer_ip_address_types
    )
    if preserved and not when_client_ip_preserved:
        return HeaderDecision("preserved", CLIENT_ADDRESS_PRESERVED)
    if attributes.placement_safe:
        return HeaderDecision("enable", "header needed", ((PROXY_PROTOCOL_V2, "true"),))
    return HeaderDecision(
        "enable", "header needed", ((PROXY_PROTOCOL_V2, "true"), (HEADER_PLACEMENT, ON_FIRST_ACK))
    )


def support_request(target_group_arn: str) -> str:
    """The reason of a ``blocked``/``broken`` outcome: what to ask AWS Support, how to check it."""
    account = _account_of(target_group_arn)
    region = _region_of(target_group_arn)
    return (
        f"AWS refused {HEADER_PLACEMENT}={ON_FIRST_ACK} on {target_group_arn}. "
        f'Ask AWS Support (Service limit increase / Elastic Load Balancing): "Please allow account '
        f"{account} in {region} to set the Network Load Balancer target group attribute "
        f"{HEADER_PLACEMENT} to {ON_FIRST_ACK}: our targets run SMTP, where the server speaks "
        f'first, so the PROXY protocol v2 header must be sent on the first ACK." '
        f"Check it took: aws elbv2 describe-target-group-attributes --target-group-arn "
        f"{target_group_arn} --query \"Attributes[?Key=='{HEADER_PLACEMENT}'].Value\" --output text "
        f"(then {ON_FIRST_ACK} once proxymx could set it; the next sweep does)"
    )


def _arn_part(arn: str, index: int, fallback: str) -> str:
    parts = arn.split(":")
    return parts[index] if len(parts) > 5 and parts[index] else fallback


def _account_of(arn: str) -> str:
    return _arn_part(arn, 4, "<account id>")


def _region_of(arn: str) -> str:
    return _arn_part(arn, 3, "<region>")
