"""``make demo`` end to end: embedded AWS control plane, real Postfix behind real HAProxy."""

from __future__ import annotations

import io
import re
import subprocess

from proxymx.local import demo


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
    # and nothing it started is left running
    assert subprocess.run(["pgrep", "-f", "proxymx-demo-"], capture_output=True, check=False).returncode == 1
