"""IPv6 senders behind a dual-stack load balancer (issue 7.8), measured and proven on the wire.

A dual-stack NLB forwards an IPv6 sender over IPv4 with a TCP6 (v1) / AF_INET6 (v2) header. On a
host whose main.cf says ``inet_protocols = ipv4`` (what LocalPostfix writes, as hardened hosts
do), postscreen answers such a header with 421 for ever. The document gives the services that
read the header ``-o inet_protocols=all`` (a reload applies it) and leaves main.cf, master's
listeners and outbound delivery alone. A raw client sends the header itself here: no traffic
ever goes to 2001:db8::/32 (a documentation prefix), it is only data in the header.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from dataplane_support import Proxies, swaks
from document_support import (
    config_files,
    loopback_address,
    params,
    proxy_v1,
    proxy_v2,
    smtp_replies,
    summary_fields,
)
from proxymx.postfix_summary import parse_summary
from proxymx_tools.document import AGENT_PATH, DocumentRun, resolve_parameters, run_document
from proxymx_tools.postfix import LocalPostfix
from proxymx_tools.template import document_script, load_template

CLIENT6 = "2001:db8::7"
SERVER6 = "2001:db8::1"


def listeners(port: int) -> str:
    return subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout


def test_ipv6_clients_from_v1_and_v2_headers_are_accepted_without_touching_main_cf(
    new_postfix: LocalPostfix, proxies: Proxies
) -> None:
    # Given main.cf with inet_protocols = ipv4, the MX service named without an address (master
    # listens where main.cf says: inet_interfaces, inet_protocols) and a submission port 587,
    # configured for the PROXY protocol the way the document did before IPv6 (no per-service
    # inet_protocols)
    postfix = new_postfix
    assert postfix.postconf("-n", "inet_protocols").strip() == "inet_protocols = ipv4"
    port = postfix.smtp_port
    postfix.postconf("-MX", f"{postfix.smtp_service}/inet")
    postfix.postconf("-M", f"{port}/inet={port} inet n - n - - smtpd")
    address = loopback_address()
    submission = f"{address}:587"
    postfix.postconf(
        "-M", f"{submission}/inet={submission} inet n - n - - smtpd -o syslog_name=postfix/submission"
    )
    postfix.start()
    ports = f"{port},587"
    assert run_document(params(postfix, SmtpPorts=ports), mail_config=postfix.config_dir).exit_code == 0
    ipv6_services = {f"{port}/inet", "smtpd/pass", f"{submission}/inet"}
    for service in ipv6_services:
        postfix.postconf("-PX", f"{service}/inet_protocols")
    postfix.reload()

    # Then (the measurement) an IPv6 client in the header gets 421, v1 and v2 alike
    offset = postfix.log_offset()
    assert smtp_replies(port, proxy_v1(CLIENT6, SERVER6, 41001, port))[0].startswith("421")
    assert smtp_replies(port, proxy_v2(CLIENT6, SERVER6, 41002, port))[0].startswith("421")
    postfix.wait_for_log(
        r"postscreen\[\d+\]: warning: haproxy read: bad or missing protocol type: PROXY TCP6", since=offset
    )
    postfix.wait_for_log(
        r"postscreen\[\d+\]: warning: haproxy read: Postfix IPv6 support is disabled", since=offset
    )

    # When the document runs
    run = run_document(params(postfix, SmtpPorts=ports), mail_config=postfix.config_dir)

    # Then it gives each service that reads the header its own inet_protocols, and proves it
    assert run.exit_code == 0, run.stdout + run.stderr
    summary = summary_fields(run)
    assert summary["result"] == "configured" and summary["ipv6_clients"] is True
    assert set(summary["changed"]) == {f"master.cf:{service}/inet_protocols" for service in ipv6_services}
    assert all(summary["verified"][f"{service}/inet_protocols"] == "all" for service in ipv6_services)
    assert (
        f"port {port} on 127.0.0.1 listens and accepts IPv6 clients from a v2 header (AF_INET6)" in run.stdout
    )
    assert "reload -- version" in postfix.log_text()[offset:]

    # And a client that sends the header itself is logged with its IPv6 address, v1 and v2
    offset = postfix.log_offset()
    for source_port, header in ((41001, proxy_v1), (41002, proxy_v2)):
        replies = smtp_replies(port, header(CLIENT6, SERVER6, source_port, port))
        assert replies[0].startswith("220") and replies[-1].startswith("221"), replies
        postfix.wait_for_log(
            rf"postscreen\[\d+\]: CONNECT from \[2001:db8::7\]:{source_port} to \[2001:db8::1\]:{port}",
            since=offset,
        )
    postfix.wait_for_log(r"postfix/smtpd\[\d+\]: connect from unknown\[2001:db8::7\]", since=offset)
    # and so does the submission smtpd, which reads the header itself
    replies = smtp_replies(587, proxy_v1(CLIENT6, SERVER6, 41003, 587), host=address)
    assert replies[0].startswith("220"), replies
    postfix.wait_for_log(
        r"postfix/submission/smtpd\[\d+\]: connect from unknown\[2001:db8::7\]", since=offset
    )

    # And nothing else changed: main.cf still says ipv4 (outbound delivery and master's listeners
    # follow it), the outbound smtp client has no override, master listens on IPv4 only
    assert postfix.postconf("-n", "inet_protocols").strip() == "inet_protocols = ipv4"
    assert postfix.postconf("-P", "smtp/unix/inet_protocols").strip() == ""
    own_listeners = listeners(port)
    assert "127.0.0.1:" in own_listeners and "[::" not in own_listeners, own_listeners
    # and mail still leaves over IPv4: a message through a v1 proxy reaches the next hop
    proxy = proxies.start(port, "v1")
    sent = swaks(proxy.port, client="127.0.0.5", subject="relayed over IPv4")
    assert sent.returncode == 0, sent.stdout
    assert postfix.sink is not None and postfix.sink.wait_for_count(1) == 1

    # And a second run changes nothing
    configured = config_files(postfix)
    again = run_document(params(postfix, SmtpPorts=ports), mail_config=postfix.config_dir)
    assert again.exit_code == 0, again.stdout + again.stderr
    assert summary_fields(again)["result"] == "unchanged" and summary_fields(again)["ipv6_clients"] is True
    assert config_files(postfix) == configured


def run_without_kernel_ipv6(parameters: dict[str, str], mail_config: Path) -> DocumentRun:
    """The script as run_document runs it, but seeing no /proc/net/if_inet6: a tmpfs hides its
    own /proc/<pid>/net in a private mount namespace (the process then execs the script, same pid).
    The kernel still has IPv6; only the script's check is made to say otherwise."""
    template = load_template()
    values = resolve_parameters(template, parameters)
    env = {"PATH": AGENT_PATH, "HOME": "/root", "LANG": "C.UTF-8", "MAIL_CONFIG": str(mail_config)}
    env.update({f"SSM_{name}": value for name, value in values.items()})
    with tempfile.TemporaryDirectory(prefix="proxymx-ssm-") as workdir:
        script = Path(workdir) / "_script.sh"
        script.write_text(document_script(template))
        script.chmod(0o700)
        done = subprocess.run(
            [
                "unshare",
                "--mount",
                "sh",
                "-c",
                'mount -t tmpfs none /proc/$$/net && exec /bin/bash "$0"',
                str(script),
            ],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    return DocumentRun(exit_code=done.returncode, stdout=done.stdout, stderr=done.stderr)


def test_a_host_without_ipv6_is_configured_for_ipv4_and_says_why_not_ipv6(
    running_postfix: LocalPostfix,
) -> None:
    # Given a host whose kernel (as the script sees it) has no IPv6
    assert shutil.which("unshare", path=AGENT_PATH), "unshare (util-linux) is needed"
    postfix = running_postfix

    # When the document runs
    run = run_without_kernel_ipv6(params(postfix), postfix.config_dir)

    # Then the PROXY protocol is configured and proven for IPv4, and IPv6 is refused with the reason
    assert run.exit_code == 0, run.stdout + run.stderr
    summary = summary_fields(run)
    assert summary["result"] == "configured" and summary["ipv6_clients"] is False
    assert summary["verified"]["ipv6_clients"].startswith("refused: the kernel has no IPv6")
    assert "IPv6 clients: refused" in run.stdout
    assert parse_summary(run.stdout) is not None and parse_summary(run.stdout).proves_configuration  # type: ignore[union-attr]
    # nothing pretends otherwise: no service was given inet_protocols
    assert "inet_protocols" not in postfix.postconf("-P")


def test_the_summary_stays_one_small_line_with_many_services(
    new_postfix: LocalPostfix, tmp_path: Path
) -> None:
    # Given the MX port, three submission services on 587 and two implicit-TLS services on 465,
    # each on its own loopback address, all in SmtpPorts
    postfix = new_postfix
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=mx.test",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    for _ in range(3):
        sub = f"{loopback_address()}:587"
        postfix.postconf("-M", f"{sub}/inet={sub} inet n - n - - smtpd")
    tls_addresses = [loopback_address(), loopback_address()]
    for tls_address in tls_addresses:
        postfix.postconf(
            "-M",
            f"{tls_address}:465/inet={tls_address}:465 inet n - n - - smtpd -o smtpd_tls_wrappermode=yes "
            f"-o smtpd_tls_cert_file={cert} -o smtpd_tls_key_file={key}",
        )
    postfix.start()
    ports = f"{postfix.smtp_port},587,465"

    # When the document configures all of them
    run = run_document(params(postfix, SmtpPorts=ports), mail_config=postfix.config_dir)

    # Then the summary is still one line under 2,000 characters that proves the configuration
    # (IPv6 included: the TLS port kept silent after a TCP6 header too), per-service values
    # listed above it instead of in it
    assert run.exit_code == 0, run.stdout + run.stderr
    line = run.stdout.strip().splitlines()[-1]
    assert len(line) < 2000, len(line)
    summary = parse_summary(run.stdout)
    assert summary is not None and summary.proves_configuration
    assert summary_fields(run)["ipv6_clients"] is True
    assert re.search(r"^proxymx: verified: smtpd/pass/inet_protocols = all$", run.stdout, re.MULTILINE)
    for tls_address in tls_addresses:
        assert (
            f"port 465 on {tls_address} listens and accepts IPv6 clients from a v1 header (TCP6)"
            in run.stdout
        )
