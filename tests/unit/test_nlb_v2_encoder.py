"""The NLB stand-in's PROXY v2 encoder, byte by byte, and its configuration rules (no network).

Expected bytes are written out from haproxy's doc/proxy-protocol.txt, section 2.2 (signature,
version/command, family/transport, length, address block, TLVs), and, for the health check, from
a capture of a real NLB health check (kubernetes/kubernetes issue #57250).
"""

from __future__ import annotations

import pytest
from proxymx_tools.nlb import (
    DEFAULT_HEADER_PLACEMENT,
    HealthCheckSettings,
    TargetGroup,
    TargetHealth,
    crc32c,
    nlb_health_check_header,
    parse_proxy_v2,
    proxy_v2_header,
    proxy_v2_local_header,
    proxy_v2_proxy_header,
    tlv,
)

SIGNATURE = "0d0a0d0a000d0a515549540a"

# The first 100 bytes of TCP payload of an NLB health check, as tcpdump printed them in
# kubernetes/kubernetes issue #57250 (offsets 0x0028-0x008b of the packet).
NLB_HEALTH_CHECK_CAPTURE = bytes.fromhex(
    "0d0a 0d0a 000d 0a51 5549 540a 2011 0054 0300 04bc e595 1f04 004a".replace(" ", "")
) + bytes(74)


def test_signature_is_the_twelve_bytes_of_the_specification() -> None:
    # Given any header, Then it starts with \r\n\r\n\0\r\nQUIT\n
    assert proxy_v2_local_header()[:12].hex() == SIGNATURE


def test_proxy_command_over_tcp4_byte_by_byte() -> None:
    # When a client 127.0.0.2:40000 reached the listener 127.0.0.1:25
    header = proxy_v2_proxy_header(("127.0.0.2", 40000), ("127.0.0.1", 25))

    # Then: version 2 + PROXY (0x21), AF_INET + STREAM (0x11), length 12, source address,
    # destination address, source port (0x9c40), destination port (0x0019)
    assert header.hex() == SIGNATURE + "21" + "11" + "000c" + "7f000002" + "7f000001" + "9c40" + "0019"
    assert len(header) == 28


def test_proxy_command_over_tcp6_byte_by_byte() -> None:
    # When an IPv6 client reached an IPv6 listener
    header = proxy_v2_proxy_header(("2001:db8::7", 2525), ("::1", 587))

    # Then: 0x21 (PROXY), 0x21 (AF_INET6 + STREAM), length 36 = 2*16 + 2*2
    source = "20010db8" + "0" * 22 + "07"
    destination = "0" * 31 + "1"
    assert header.hex() == SIGNATURE + "21" + "21" + "0024" + source + destination + "09dd" + "024b"
    assert len(header) == 52


def test_mixed_families_write_the_ipv4_side_as_ipv4_mapped_ipv6() -> None:
    # When the header names an IPv6 client on an IPv4 listener (one family per header)
    header = proxy_v2_proxy_header(("2001:db8::7", 1), ("127.0.0.1", 25))

    # Then both addresses are AF_INET6, the listener as ::ffff:127.0.0.1
    assert header[13] == 0x21
    assert header[16 + 16 : 16 + 32].hex() == "00000000000000000000ffff7f000001"


def test_local_command_as_the_specification_recommends_it() -> None:
    # Then: version 2 + LOCAL (0x20), UNSPEC (0x00), length 0, nothing else
    assert proxy_v2_local_header().hex() == SIGNATURE + "20" + "00" + "0000"


def test_health_check_header_is_the_captured_nlb_header_byte_for_byte() -> None:
    # When the stand-in builds its health-check header
    header = nlb_health_check_header()

    # Then it is exactly what an NLB sent: LOCAL, family 0x11, length 84, a CRC32C TLV whose
    # checksum (bce5951f) we recompute, and a 74-byte NOOP TLV
    assert header == NLB_HEALTH_CHECK_CAPTURE
    assert header[19:23].hex() == "bce5951f"


def test_crc32c_matches_the_standard_check_values() -> None:
    # The CRC-32C check value of "123456789", and RFC 3720 B.4's 32 zero bytes
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA


def test_tlv_is_type_then_two_byte_length_then_value() -> None:
    assert tlv(0x04, b"ab") == b"\x04\x00\x02ab"
    assert tlv(0x04) == b"\x04\x00\x00"
    with pytest.raises(ValueError):
        tlv(0x100, b"")


def test_checksum_goes_first_among_the_tlvs_and_covers_the_whole_header() -> None:
    # When a PROXY header carries a NOOP TLV and a checksum
    header = proxy_v2_proxy_header(("127.0.0.2", 1), ("127.0.0.1", 25), tlvs=tlv(0x04, b"x"), checksum=True)

    # Then the CRC32C TLV follows the address block, and zeroing it gives back its own value
    assert header[28:31] == b"\x03\x00\x04"
    assert header[35:] == b"\x04\x00\x01x"
    zeroed = header[:31] + bytes(4) + header[35:]
    assert crc32c(zeroed) == int.from_bytes(header[31:35], "big")


def test_parse_reads_back_addresses_and_rejects_a_wrong_checksum() -> None:
    header = proxy_v2_proxy_header(("127.0.0.9", 1234), ("127.0.0.1", 2525), checksum=True)
    parsed = parse_proxy_v2(header + b"EHLO x\r\n")
    assert parsed.command == "PROXY"
    assert parsed.source == ("127.0.0.9", 1234)
    assert parsed.destination == ("127.0.0.1", 2525)
    assert parsed.length == len(header)
    corrupted = bytearray(header)
    corrupted[20] ^= 0xFF  # a byte of the source address
    with pytest.raises(ValueError, match="CRC32C"):
        parse_proxy_v2(bytes(corrupted))
    with pytest.raises(ValueError):
        parse_proxy_v2(b"PROXY TCP4 127.0.0.9 127.0.0.1 1234 25\r\n")


@pytest.mark.parametrize(
    ("source", "destination"),
    [(("127.0.0.2", 70000), ("127.0.0.1", 25)), (("mx.example", 1), ("127.0.0.1", 25))],
)
def test_encoder_refuses_what_it_cannot_encode(source: tuple[str, int], destination: tuple[str, int]) -> None:
    with pytest.raises(ValueError):
        proxy_v2_proxy_header(source, destination)


def test_unknown_command_is_refused() -> None:
    with pytest.raises(ValueError):
        proxy_v2_header(0x2, 0x11)


# ----- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"target_host": "10.0.0.5"},
        {"target_host": "localhost"},
        {"listen_host": "0.0.0.0"},
        {"listen_host": "192.0.2.1"},
        {"health_check": "10.0.0.9"},
    ],
)
def test_the_stand_in_refuses_anything_outside_loopback(changes: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"loopback|literal"):
        if "health_check" in changes:
            HealthCheckSettings(source=changes["health_check"])
        else:
            TargetGroup(2525, **changes)  # type: ignore[arg-type]


def test_loopback_addresses_and_a_header_only_override_are_accepted() -> None:
    group = TargetGroup(
        2525, target_host="127.0.0.1", listen_host="::1", client_address_override="2001:DB8::7"
    )
    # the override is header data, never bound: any address, written canonically
    assert group.client_address_override == "2001:db8::7"


def test_defaults_are_awss() -> None:
    group = TargetGroup(25)
    assert group.header_placement == DEFAULT_HEADER_PLACEMENT == "on_first_ack_with_payload"
    assert group.proxy_protocol_v2 is False
    settings = HealthCheckSettings()
    assert (settings.interval, settings.timeout) == (30.0, 10.0)
    assert (settings.healthy_threshold, settings.unhealthy_threshold) == (5, 2)


@pytest.mark.parametrize(
    ("target_type", "explicit", "preserved"),
    [("instance", None, True), ("ip", None, False), ("instance", False, False), ("ip", True, True)],
)
def test_client_ip_preservation_follows_the_target_type_unless_set(
    target_type: str, explicit: bool | None, preserved: bool
) -> None:
    group = TargetGroup(25, target_type=target_type, preserve_client_ip=explicit)  # type: ignore[arg-type]
    assert group.preserves_client_ip is preserved


def test_unknown_header_placement_is_refused() -> None:
    with pytest.raises(ValueError, match="header_placement"):
        TargetGroup(25, header_placement="on_syn")  # type: ignore[arg-type]


# ----- health state ------------------------------------------------------------------------


def test_target_becomes_healthy_only_after_the_healthy_threshold() -> None:
    health = TargetHealth(healthy_threshold=3, unhealthy_threshold=2)
    assert [health.record(True) for _ in range(3)] == ["initial", "initial", "healthy"]


def test_failures_turn_a_healthy_target_unhealthy_after_the_threshold_and_a_success_resets() -> None:
    health = TargetHealth(healthy_threshold=2, unhealthy_threshold=2)
    health.record(True)
    health.record(True)
    # one failure, then a success: the streak restarts, still healthy
    assert [health.record(ok) for ok in (False, True, False, False)] == [
        "healthy",
        "healthy",
        "healthy",
        "unhealthy",
    ]
    assert [health.record(True) for _ in range(2)] == ["unhealthy", "healthy"]


def test_a_target_that_never_answers_goes_from_initial_to_unhealthy() -> None:
    health = TargetHealth(healthy_threshold=5, unhealthy_threshold=2)
    assert [health.record(False) for _ in range(2)] == ["initial", "unhealthy"]


@pytest.mark.parametrize(
    ("changes", "client", "source"),
    [
        ({"target_type": "instance"}, "127.0.0.5", "127.0.0.5"),  # preserved: the client's own
        ({"target_type": "ip"}, "127.0.0.5", "127.0.0.1"),  # not preserved: the listener's
        ({"target_type": "instance", "listen_host": "::1"}, "::1", "127.0.0.1"),  # IPv6 client, IPv4 target
        ({"target_type": "ip", "listen_host": "::1", "target_host": "::1"}, "::1", "::1"),
    ],
)
def test_the_target_sees_the_client_only_when_preservation_applies(
    changes: dict[str, str], client: str, source: str
) -> None:
    group = TargetGroup(25, health_check=None, **changes)  # type: ignore[arg-type]
    assert group.source_for(client) == source


def test_health_checks_must_come_from_the_targets_address_family() -> None:
    with pytest.raises(ValueError, match="family"):
        TargetGroup(25, target_host="::1", health_check=HealthCheckSettings(source="127.0.0.1"))
