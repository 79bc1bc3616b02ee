"""``make demo`` end to end: embedded AWS control plane, real Postfix behind real HAProxy."""

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
    assert "2 message(s) reached the next hop" in text
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
