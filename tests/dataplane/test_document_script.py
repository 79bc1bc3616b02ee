"""The SSM document's script, extracted from template.yaml, run for real against Postfix (issue 3).

Each test gets a private Postfix built from Debian's own default configuration, with its SMTP
service on a high loopback port named ``127.0.0.1:<port>``; ``SmtpPorts=<port>`` makes the
script treat it as the MX service, exactly as it treats ``smtp`` (25) in production.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
import time
from pathlib import Path

import pytest
from dataplane_support import Proxies, swaks
from proxymx_tools.document import run_document
from proxymx_tools.postfix import LocalPostfix, free_port


def params(postfix: LocalPostfix, **extra: str) -> dict[str, str]:
    return {"SmtpPorts": str(postfix.smtp_port), "UpstreamProxyTimeout": "1s", **extra}


def tree_digest(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` (relative path -> sha256): proves that nothing was written."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def config_files(postfix: LocalPostfix) -> dict[str, bytes]:
    return {name: (postfix.config_dir / name).read_bytes() for name in ("main.cf", "master.cf")}


def test_fresh_debian_configuration_is_configured_and_a_second_run_changes_nothing(
    running_postfix: LocalPostfix,
) -> None:
    # Given a running Postfix with Debian's default configuration (smtpd on the SMTP port)
    postfix = running_postfix
    before = config_files(postfix)
    service = postfix.smtp_service

    # When the document runs
    first = run_document(params(postfix), mail_config=postfix.config_dir)

    # Then postscreen fronts the SMTP port and reads the PROXY header, verified and proven
    assert first.exit_code == 0, first.stdout + first.stderr
    summary = first.summary
    assert summary is not None and summary.result == "configured"
    assert summary.proves_configuration
    assert summary.postfix_version and summary.postfix_version.startswith("3.")
    assert summary.smtp_ports == [postfix.smtp_port]
    assert "main.cf:postscreen_upstream_proxy_protocol" in summary.changed
    assert f"master.cf:{service}/inet" in summary.changed
    assert summary.verified["postscreen_upstream_proxy_timeout"] == "1s"
    assert postfix.postconf("-h", "postscreen_upstream_proxy_protocol").strip() == "haproxy"
    assert postfix.postconf("-M", f"{service}/inet").split()[5:8] == ["-", "1", "postscreen"]
    # the chroot column of the old smtp line (n here) is kept, not forced to y
    assert postfix.postconf("-M", "smtpd/pass").split()[1:8] == ["pass", "-", "-", "n", "-", "-", "smtpd"]
    assert postfix.postconf("-M", "dnsblog/unix").split()[-1] == "dnsblog"
    assert postfix.postconf("-M", "tlsproxy/unix").split()[-1] == "tlsproxy"
    # applied with a reload (running sessions finish), never stop/start
    log = postfix.log_text()
    assert "reload -- version" in log
    assert "stopping the Postfix mail system" not in log
    backups = list((postfix.config_dir / "proxymx-backup").iterdir())
    assert len(backups) == 1
    assert (backups[0] / "main.cf").read_bytes() == before["main.cf"]
    assert (backups[0] / "master.cf").read_bytes() == before["master.cf"]

    # When it runs a second time
    configured = config_files(postfix)
    offset = postfix.log_offset()
    second = run_document(params(postfix), mail_config=postfix.config_dir)

    # Then nothing changes, it says so, and Postfix is not reloaded
    assert second.exit_code == 0, second.stdout + second.stderr
    assert second.summary is not None and second.summary.result == "unchanged"
    assert second.summary.changed == []
    assert second.summary.proves_configuration
    assert "nothing to change" in second.stdout
    assert config_files(postfix) == configured
    assert "reload" not in postfix.log_text()[offset:]
    assert len(list((postfix.config_dir / "proxymx-backup").iterdir())) == 1


def test_smtpd_overrides_and_process_limit_move_to_smtpd_pass(new_postfix: LocalPostfix) -> None:
    # Given an SMTP line with overrides (one of them smtpd reading the header itself), a process
    # limit, and Postfix not running
    postfix = new_postfix
    service = postfix.smtp_service
    postfix.postconf(
        "-M",
        f"{service}/inet={service} inet n - n - 20 smtpd -o smtpd_tls_security_level=none "
        "-o { smtpd_client_restrictions = permit_mynetworks, reject } "
        "-o smtpd_upstream_proxy_protocol=haproxy",
    )

    # When the document runs
    run = run_document(params(postfix), mail_config=postfix.config_dir)

    # Then the overrides and the limit are on "smtpd pass", the SMTP line is bare postscreen,
    # and Postfix was started (it was not running) rather than reloaded
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.summary is not None and run.summary.proves_configuration
    assert "started" in run.stdout
    assert postfix.postconf("-P", "smtpd/pass/smtpd_tls_security_level").strip().endswith("= none")
    restrictions = postfix.postconf("-P", "smtpd/pass/smtpd_client_restrictions").strip()
    assert restrictions.endswith("= permit_mynetworks, reject")
    assert postfix.postconf("-M", "smtpd/pass").split()[6] == "20"
    # an smtpd behind postscreen must not expect a header of its own
    assert "smtpd_upstream_proxy_protocol" not in postfix.postconf("-M", "smtpd/pass")
    # (no other override on the postscreen line than the one that lets it take IPv6 client
    # addresses from the header: main.cf says inet_protocols = ipv4)
    smtp_line = postfix.postconf("-M", f"{service}/inet").split()
    assert smtp_line[6:] == ["1", "postscreen", "-o", "inet_protocols=all"]


def test_submission_ports_read_the_header_in_smtpd(new_postfix: LocalPostfix, proxies: Proxies) -> None:
    # Given a submission service on port 587 (on its own loopback address, so that parallel
    # runs never collide) besides the MX port, and both in SmtpPorts
    postfix = new_postfix
    address = f"127.{random.randint(16, 250)}.{random.randint(0, 250)}.{random.randint(2, 250)}"
    submission = f"{address}:587"
    postfix.postconf(
        "-M", f"{submission}/inet={submission} inet n - n - - smtpd -o syslog_name=postfix/submission"
    )
    postfix.start()

    # When the document runs for both ports
    run = run_document(params(postfix, SmtpPorts=f"{postfix.smtp_port},587"), mail_config=postfix.config_dir)

    # Then the submission smtpd reads the header itself (no postscreen on it), and proves it
    assert run.exit_code == 0, run.stdout + run.stderr
    summary = run.summary
    assert summary is not None and summary.proves_configuration
    assert summary.smtp_ports == [postfix.smtp_port, 587]
    assert summary.verified[f"{submission}/inet/smtpd_upstream_proxy_protocol"] == "haproxy"
    assert summary.verified[f"{submission}/inet/smtpd_upstream_proxy_timeout"] == "1s"
    assert postfix.postconf("-M", f"{submission}/inet").split()[7] == "smtpd"
    assert f"port 587 on {address} listens and speaks the PROXY protocol" in run.stdout

    # And a client behind a v1 proxy is logged by the submission smtpd with its own address
    proxy = proxies.start(587, "v1", backend_host=address)
    offset = postfix.log_offset()
    sent = swaks(proxy.port, client="127.0.0.7", subject="submission through v1")
    assert sent.returncode == 0, sent.stdout
    postfix.wait_for_log(
        r"postfix/submission/smtpd\[\d+\]: connect from unknown\[127\.0\.0\.7\]", since=offset
    )


def test_a_port_in_smtp_ports_without_a_service_is_a_clear_failure(new_postfix: LocalPostfix) -> None:
    # Given SmtpPorts naming 465, which this Postfix does not serve
    postfix = new_postfix
    before = config_files(postfix)

    # When the document runs
    run = run_document(params(postfix, SmtpPorts=f"{postfix.smtp_port},465"), mail_config=postfix.config_dir)

    # Then it fails, says why, and writes nothing
    assert run.exit_code != 0
    assert run.summary is not None and run.summary.result == "failed"
    assert "port 465" in (run.summary.reason or "")
    assert config_files(postfix) == before


def test_broken_configuration_is_rolled_back_and_postfix_keeps_serving(running_postfix: LocalPostfix) -> None:
    # Given a latent error that only postscreen trips over (smtpd never reads this parameter)
    postfix = running_postfix
    postfix.postconf("-e", "postscreen_greet_wait=soon")
    postfix.reload()
    before = config_files(postfix)

    # When the document runs
    run = run_document(params(postfix), mail_config=postfix.config_dir)

    # Then it fails with the reason, restores both files exactly, and reloads
    assert run.exit_code != 0
    summary = run.summary
    assert summary is not None and summary.result == "failed"
    assert not summary.proves_configuration
    assert "does not answer" in (summary.reason or "")
    assert "rolling back" in run.stderr
    assert config_files(postfix) == before
    # And Postfix still serves mail on the SMTP port, as before the attempt (once master's
    # service_throttle_time for the crashed postscreen has passed: 5s here, 60s by default)
    assert postfix.is_running()
    sent = swaks(postfix.smtp_port, subject="after rollback", timeout=20)
    assert sent.returncode == 0, sent.stdout
    assert postfix.sink is not None and postfix.sink.wait_for_count(1) == 1


def test_postfix_missing_is_a_clear_failure(new_postfix: LocalPostfix) -> None:
    # Given a PATH without Postfix (postconf and postfix live in /usr/sbin)
    postfix = new_postfix

    # When the document runs
    run = run_document(params(postfix), mail_config=postfix.config_dir, env={"PATH": "/usr/bin:/bin"})

    # Then it fails and says Postfix is not installed
    assert run.exit_code != 0
    assert run.summary is not None and run.summary.result == "failed"
    assert run.summary.postfix_version is None
    assert "Postfix is not installed" in (run.summary.reason or "")


@pytest.fixture
def postfix_3_4(tmp_path: Path) -> dict[str, str]:
    """A PATH whose postconf reports mail_version 3.4.0 (and is the real postconf otherwise)."""
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    wrapper = fake_bin / "postconf"
    wrapper.write_text(
        "#!/bin/sh\n"
        'if [ "$*" = "-h mail_version" ]; then echo 3.4.0; exit 0; fi\n'
        'exec /usr/sbin/postconf "$@"\n'
    )
    wrapper.chmod(0o755)
    return {"PATH": f"{fake_bin}:/usr/sbin:/usr/bin:/sbin:/bin"}


@pytest.mark.parametrize("protocol", ["v2", "any"])
def test_postfix_too_old_for_v2_is_a_clear_failure(
    new_postfix: LocalPostfix, postfix_3_4: dict[str, str], protocol: str
) -> None:
    # Given Postfix 3.4 (reads PROXY v1 only)
    postfix = new_postfix
    before = config_files(postfix)

    # When the document runs for a load balancer sending v2 (or "any")
    run = run_document(
        params(postfix, ProxyProtocol=protocol), mail_config=postfix.config_dir, env=postfix_3_4
    )

    # Then it fails before writing anything, saying what version is needed
    assert run.exit_code != 0
    assert run.summary is not None and run.summary.result == "failed"
    assert run.summary.postfix_version == "3.4.0"
    assert "too old" in (run.summary.reason or "") and "3.5" in (run.summary.reason or "")
    assert config_files(postfix) == before


def test_postfix_3_4_is_enough_for_v1(new_postfix: LocalPostfix, postfix_3_4: dict[str, str]) -> None:
    # Given Postfix 3.4, When the plan for a v1 load balancer is asked for
    run = run_document(
        params(new_postfix, ProxyProtocol="v1", DryRun="true"),
        mail_config=new_postfix.config_dir,
        env=postfix_3_4,
    )
    # Then the version is accepted
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.summary is not None and run.summary.result == "dry-run"


def test_dry_run_prints_the_plan_and_writes_nothing(new_postfix: LocalPostfix) -> None:
    # Given a fresh configuration, Postfix not running
    postfix = new_postfix
    before = tree_digest(postfix.config_dir)

    # When the document runs with DryRun=true
    run = run_document(params(postfix, DryRun="true"), mail_config=postfix.config_dir)

    # Then it prints the plan, proves nothing, writes nothing and starts nothing
    assert run.exit_code == 0, run.stdout + run.stderr
    summary = run.summary
    assert summary is not None and summary.result == "dry-run" and summary.dry_run
    assert not summary.proves_configuration
    assert "main.cf:postscreen_upstream_proxy_protocol" in summary.changed
    assert "plan: postconf -e 'postscreen_upstream_proxy_protocol=haproxy'" in run.stdout
    assert tree_digest(postfix.config_dir) == before
    assert not postfix.is_running()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SmtpPorts", "25;touch /tmp/proxymx-injected"),
        ("SmtpPorts", "70000"),
        ("ProxyProtocol", "v3"),
        ("UpstreamProxyTimeout", "$(touch /tmp/proxymx-injected)"),
        ("DryRun", "yes"),
    ],
)
def test_the_script_revalidates_every_parameter(new_postfix: LocalPostfix, name: str, value: str) -> None:
    # Given a value that the document's allowedPattern would refuse, handed to the script anyway
    given = {**params(new_postfix), name: value}
    before = tree_digest(new_postfix.config_dir)

    # When the script runs
    run = run_document(given, mail_config=new_postfix.config_dir, validate=False)

    # Then it refuses it by name, runs nothing from it, and writes nothing
    assert run.exit_code != 0
    assert run.summary is not None and run.summary.result == "failed"
    assert name in (run.summary.reason or "")
    assert not Path("/tmp/proxymx-injected").exists()
    assert tree_digest(new_postfix.config_dir) == before


def test_the_chroot_column_of_the_smtp_line_is_kept(new_postfix: LocalPostfix) -> None:
    # Given an SMTP line chrooted as on a stock Debian instance (y)
    postfix = new_postfix
    service = postfix.smtp_service
    postfix.postconf("-F", f"{service}/inet/chroot=y")

    # When the plan is asked for
    run = run_document(params(postfix, DryRun="true"), mail_config=postfix.config_dir)

    # Then every service the script adds or rewrites is chrooted alike
    assert run.exit_code == 0, run.stdout + run.stderr
    assert f"'{service}/inet={service} inet n - y - 1 postscreen'" in run.stdout
    assert "'smtpd/pass=smtpd pass - - y - - smtpd'" in run.stdout
    assert "'dnsblog/unix=dnsblog unix - - y - 0 dnsblog'" in run.stdout
    assert "'tlsproxy/unix=tlsproxy unix - - y - 0 tlsproxy'" in run.stdout


def test_a_configured_postfix_that_is_not_running_is_started_and_unchanged(new_postfix: LocalPostfix) -> None:
    # Given a configuration the document already wrote, and Postfix stopped
    postfix = new_postfix
    assert run_document(params(postfix), mail_config=postfix.config_dir).exit_code == 0
    postfix.postfix("stop")
    deadline = time.monotonic() + 10
    while postfix.is_running() and time.monotonic() < deadline:
        time.sleep(0.1)
    configured = config_files(postfix)

    # When the document runs again
    run = run_document(params(postfix), mail_config=postfix.config_dir)

    # Then it writes nothing, starts Postfix and proves the configuration
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.summary is not None and run.summary.result == "unchanged"
    assert run.summary.proves_configuration
    assert "started" in run.stdout
    assert config_files(postfix) == configured


def test_an_unused_smtpd_pass_does_not_swallow_the_smtp_lines_overrides(new_postfix: LocalPostfix) -> None:
    # Given an SMTP line with overrides and a process limit, and a bare "smtpd pass" already in
    # master.cf that no postscreen uses yet
    postfix = new_postfix
    service = postfix.smtp_service
    postfix.postconf("-M", f"{service}/inet={service} inet n - n - 20 smtpd -o smtpd_tls_security_level=none")
    postfix.postconf("-M", "smtpd/pass=smtpd pass - - n - - smtpd")

    # When the document runs
    run = run_document(params(postfix), mail_config=postfix.config_dir)

    # Then "smtpd pass" carries what the SMTP line carried: nothing the port did is lost
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.summary is not None and run.summary.proves_configuration
    assert postfix.postconf("-P", "smtpd/pass/smtpd_tls_security_level").strip().endswith("= none")
    assert postfix.postconf("-M", "smtpd/pass").split()[6] == "20"


def test_a_postscreen_set_up_wrong_by_hand_is_repaired_and_a_second_run_changes_nothing(
    new_postfix: LocalPostfix,
) -> None:
    # Given postscreen already on the SMTP port, but with its own override switching the header
    # off, a process limit other than 1, and no "smtpd pass" to hand clients to
    postfix = new_postfix
    service = postfix.smtp_service
    postfix.postconf(
        "-M",
        f"{service}/inet={service} inet n - n - 5 postscreen "
        "-o postscreen_upstream_proxy_protocol= -o postscreen_greet_wait=2s",
    )

    # When the document runs
    run = run_document(params(postfix), mail_config=postfix.config_dir)

    # Then the line is bare postscreen (other overrides kept), "smtpd pass" exists, and it is proven
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.summary is not None and run.summary.proves_configuration
    line = postfix.postconf("-M", f"{service}/inet").split()
    assert line[6:] == ["1", "postscreen", "-o", "postscreen_greet_wait=2s", "-o", "inet_protocols=all"]
    assert postfix.postconf("-M", "smtpd/pass").split()[7] == "smtpd"
    assert {"master.cf:smtpd/pass", f"master.cf:{service}/inet"} <= set(run.summary.changed)

    # And a second run finds nothing to change
    again = run_document(params(postfix), mail_config=postfix.config_dir)
    assert again.exit_code == 0, again.stdout + again.stderr
    assert again.summary is not None and again.summary.result == "unchanged"


def test_an_implicit_tls_port_465_is_configured_and_proven(new_postfix: LocalPostfix, tmp_path: Path) -> None:
    # Given Debian's "submissions" service on 465 (TLS wrapper mode: no plaintext greeting) with
    # a certificate, besides the MX port, and both in SmtpPorts
    postfix = new_postfix
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=mx.test",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    address = f"127.{random.randint(16, 250)}.{random.randint(0, 250)}.{random.randint(2, 250)}"
    submissions = f"{address}:465"
    postfix.postconf(
        "-M",
        f"{submissions}/inet={submissions} inet n - n - - smtpd -o syslog_name=postfix/submissions "
        f"-o smtpd_tls_wrappermode=yes -o smtpd_tls_cert_file={cert} -o smtpd_tls_key_file={key}",
    )
    postfix.start()

    # When the document runs for both ports
    run = run_document(params(postfix, SmtpPorts=f"{postfix.smtp_port},465"), mail_config=postfix.config_dir)

    # Then the 465 smtpd reads the header itself and the configuration is proven (the probe does
    # not wait for a plaintext 220 that implicit TLS never sends)
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.summary is not None and run.summary.proves_configuration
    assert run.summary.verified[f"{submissions}/inet/smtpd_upstream_proxy_protocol"] == "haproxy"
    assert f"port 465 on {address} listens and speaks the PROXY protocol" in run.stdout


def test_the_probe_waits_out_postscreens_greet_test(new_postfix: LocalPostfix) -> None:
    # Given a mynetworks without loopback: postscreen does not trust the probe's address, sends
    # "220-" and waits postscreen_greet_wait (6s) before the rest of the greeting
    postfix = new_postfix
    postfix.postconf("-e", "mynetworks=10.0.0.0/8")
    postfix.start()

    # When the document runs
    run = run_document(params(postfix), mail_config=postfix.config_dir)

    # Then the probe waits for the whole greeting and proves the configuration
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.summary is not None and run.summary.proves_configuration


def test_several_mx_ports_need_a_postscreen_cache_they_can_share(new_postfix: LocalPostfix) -> None:
    # Given two MX ports, and the postscreen cache in a btree file (exclusively locked by one
    # postscreen: a second one dies at startup with "unable to get exclusive lock")
    postfix = new_postfix
    second = f"127.0.0.1:{free_port()}"
    postfix.postconf("-M", f"{second}/inet={second} inet n - n - - smtpd")
    postfix.start()
    before = config_files(postfix)
    ports = f"{postfix.smtp_port},{second.rsplit(':', 1)[1]}"

    # When the document runs for both
    run = run_document(params(postfix, SmtpPorts=ports), mail_config=postfix.config_dir)

    # Then it fails before writing anything, and says what to do
    assert run.exit_code != 0
    assert run.summary is not None and run.summary.result == "failed"
    assert "proxy:btree" in (run.summary.reason or "")
    assert config_files(postfix) == before

    # And once the cache is shared through proxymap, both ports are configured and proven
    postfix.postconf("-e", f"postscreen_cache_map=proxy:btree:{postfix.data_dir}/postscreen_cache")
    run = run_document(params(postfix, SmtpPorts=ports), mail_config=postfix.config_dir)
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.summary is not None and run.summary.proves_configuration
    assert f"port {second.rsplit(':', 1)[1]} on 127.0.0.1 listens and speaks the PROXY protocol" in run.stdout
