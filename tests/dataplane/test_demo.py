"""``make demo`` end to end: embedded AWS control plane, real Postfix behind real HAProxy (Classic
ELB, v1) and the NLB stand-in (v2, the placement read back from the embedded AWS)."""

from __future__ import annotations

import io
import re
from pathlib import Path

from proxymx_tools import demo


def test_make_demo_shows_each_clients_own_address_in_the_mail_log() -> None:
    # Given real Postfix, HAProxy and swaks (the conftest requires them)
    out = io.StringIO()

    # When the whole demo runs
    code = demo.main(out=out)

    # Then every step passed, the instance was released only after the real script ran,
    text = out.getvalue()
    assert code == 0, text
    assert "SSM commands: real document on the local Postfix" in text
    assert re.search(r'script summary: \{.*"result": ?"configured"', text), text
    assert "CONTINUE -> InService" in text
    # and the mail log shows the clients' addresses (127.0.0.2 via v1, 127.0.0.3 via v2), not the proxy's
    assert re.search(r"postscreen\[\d+\]: CONNECT from \[127\.0\.0\.2\]:\d+", text), text
    assert re.search(r"postscreen\[\d+\]: CONNECT from \[127\.0\.0\.3\]:\d+", text), text
    assert re.search(r"smtpd\[\d+\]: connect from \S*\[127\.0\.0\.2\]", text), text
    assert re.search(r"smtpd\[\d+\]: connect from \S*\[127\.0\.0\.3\]", text), text
    assert "2 message(s) reached the next hop" in text
    # and the v2 path is the NLB stand-in, configured from the target group as proxymx left it
    assert "read back: proxy_protocol_v2.enabled=true, " in text
    assert "proxy_protocol_v2.client_to_server.header_placement=on_first_ack\n" in text
    assert re.search(r"NLB stand-in 127\.0\.0\.1:\d+ -> \S+ PROXY v2, on_first_ack, ip target", text), text
    assert re.search(r"mail from 127\.0\.0\.3 through the v2 proxy \(NLB stand-in\)", text), text
    assert "HAProxy send-proxy-v2 stands in for on_first_ack only" in text
    # and the default placement, shown once, deadlocks: no banner for longer than postscreen's
    # header timeout, whose 421 the stand-in drops
    waited = re.search(r"client 127\.0\.0\.4: no banner within (\d+\.\d)s", text)
    assert waited, text
    assert float(waited.group(1)) >= 6.5
    assert re.search(r"postscreen\[\d+\]: warning: haproxy read: time limit exceeded", text), text
    assert "dropped by the NLB before the client's first byte: '421 " in text
    assert "deadlock, as proxymx prevents" in text
    # and a fleet already taking mail was cut over fleet first: blocked by the interlock, each member
    # configured by the document, then switched, with every message delivered and no 5xx
    assert re.search(r"EnableProxyProtocol -> blocked: .*cutover started: 2 target\(s\)", text), text
    assert (
        len(re.findall(r"SSM \(real document\) on i-\w+: Success; result=configured mode=configure", text))
        == 2
    )
    assert text.count("CheckOutcome -> cutover-progress") == 2
    assert "HAProxy reloaded gracefully: send-proxy" in text
    cutover = re.search(r"submitted (\d+), accepted (\d+), delivered (\d+), bounced 0, 5xx 0, 421 \d+", text)
    assert cutover, text
    assert cutover.group(1) == cutover.group(2) == cutover.group(3)
    assert re.search(r"gap \(first member proven -> header on\): \d+\.\ds", text), text
    # and nothing it started is left running (Postfix's daemons name the demo's directory in their
    # environment, HAProxy and smtp-sink on their command line), and its directory is gone
    root = re.search(r"MAIL_CONFIG=(/\S+?)/postfix/etc", text)
    assert root, text
    assert not Path(root.group(1)).exists()
    assert processes_mentioning(root.group(1)) == []


def processes_mentioning(needle: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(needle.encode() in (proc / part).read_bytes() for part in ("cmdline", "environ")):
                found.append(int(proc.name))
        except OSError:  # the process ended meanwhile, or is not ours to read
            continue
    return found
