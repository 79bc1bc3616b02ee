"""Mode=revert: the document turns Postfix back to plain, proves it, and is safe to run twice.

The way back of a cutover (issue 7.3): the load balancer stops sending the header first, then
the fleet stops expecting it. Revert removes every upstream-PROXY expectation on the SmtpPorts
services with postconf -X / -PX, keeps postscreen on the MX port, reloads, and proves plain: a
client without a header gets 220, and a header line is no longer taken as a header.
"""

from __future__ import annotations

import re
from pathlib import Path

from dataplane_support import swaks
from document_support import (
    config_files,
    loopback_address,
    params,
    proxy_v1,
    smtp_replies,
    summary_fields,
    wrapped_path,
)
from proxymx_tools.document import run_document
from proxymx_tools.postfix import LocalPostfix


def header_to(postfix: LocalPostfix, port: int | None = None) -> bytes:
    return proxy_v1("127.0.0.9", "127.0.0.1", 40009, port or postfix.smtp_port)


def test_revert_turns_a_configured_postfix_back_to_plain_and_a_second_revert_changes_nothing(
    new_postfix: LocalPostfix,
) -> None:
    # Given a Postfix configured by the document on its MX port and a submission port 587
    postfix = new_postfix
    address = loopback_address()
    submission = f"{address}:587"
    postfix.postconf(
        "-M", f"{submission}/inet={submission} inet n - n - - smtpd -o syslog_name=postfix/submission"
    )
    postfix.start()
    ports = f"{postfix.smtp_port},587"
    configured = run_document(params(postfix, SmtpPorts=ports), mail_config=postfix.config_dir)
    assert configured.exit_code == 0, configured.stdout + configured.stderr
    assert smtp_replies(postfix.smtp_port)[0].startswith("421"), "configured: no header, no greeting"

    # When the document runs in revert mode
    offset = postfix.log_offset()
    run = run_document(params(postfix, SmtpPorts=ports, Mode="revert"), mail_config=postfix.config_dir)

    # Then it reports Postfix reverted and proven plain
    assert run.exit_code == 0, run.stdout + run.stderr
    summary = summary_fields(run)
    assert summary["result"] == "reverted" and summary["mode"] == "revert"
    assert summary["running"] is True and summary["listening"] is True and summary["dry_run"] is False
    assert summary["accepts"] is None and summary["proxy_protocol"] is None
    assert summary["ipv6_clients"] is False and summary["config_level"] == 2
    assert set(summary["changed"]) == {
        "main.cf:postscreen_upstream_proxy_protocol",
        "main.cf:postscreen_upstream_proxy_timeout",
        f"master.cf:{submission}/inet/smtpd_upstream_proxy_protocol",
        f"master.cf:{submission}/inet/smtpd_upstream_proxy_timeout",
    }
    assert summary["verified"]["postscreen_upstream_proxy_protocol"] == ""
    assert summary["verified"][f"{submission}/inet/smtpd_upstream_proxy_protocol"] == ""
    # main.cf and the submission service no longer mention the upstream proxy; postscreen stays
    assert "upstream_proxy" not in postfix.postconf("-n")
    assert "upstream_proxy" not in postfix.postconf("-M", f"{submission}/inet")
    assert postfix.postconf("-M", f"{postfix.smtp_service}/inet").split()[7] == "postscreen"
    assert summary["verified"][f"{postfix.smtp_service}/inet"] == "postscreen"
    # applied with a reload, never stop/start
    log = postfix.log_text()[offset:]
    assert "reload -- version" in log and "stopping the Postfix mail system" not in log

    # And a client without a header is greeted on both ports, and mail flows from its own address
    for port, host in ((postfix.smtp_port, "127.0.0.1"), (587, address)):
        replies = smtp_replies(port, host=host)
        assert replies[0].startswith("220") and replies[-1].startswith("221"), (port, replies)
    sent = swaks(postfix.smtp_port, client="127.0.0.5", subject="plain again")
    assert sent.returncode == 0, sent.stdout
    postfix.wait_for_log(r"smtpd\[\d+\]: connect from unknown\[127\.0\.0\.5\]", since=offset)
    # And a PROXY header line is no longer read as a header: smtpd answers it as a command
    replies = smtp_replies(postfix.smtp_port, header_to(postfix))
    assert replies[0].startswith("220") and any(re.match(r"5\d\d ", line) for line in replies), replies

    # When it runs in revert mode a second time
    reverted = config_files(postfix)
    offset = postfix.log_offset()
    again = run_document(params(postfix, SmtpPorts=ports, Mode="revert"), mail_config=postfix.config_dir)

    # Then nothing changes, nothing is reloaded, and it still proves plain
    assert again.exit_code == 0, again.stdout + again.stderr
    assert summary_fields(again)["result"] == "unchanged" and summary_fields(again)["changed"] == []
    assert summary_fields(again)["listening"] is True
    assert "already plain: nothing to change" in again.stdout
    assert config_files(postfix) == reverted
    assert "reload" not in postfix.log_text()[offset:]


def test_revert_on_a_postfix_never_configured_writes_nothing(running_postfix: LocalPostfix) -> None:
    # Given Debian's plain smtpd on the MX port
    postfix = running_postfix
    before = config_files(postfix)

    # When the document runs in revert mode
    run = run_document(params(postfix, Mode="revert"), mail_config=postfix.config_dir)

    # Then there is nothing to change, and plain is proven all the same
    assert run.exit_code == 0, run.stdout + run.stderr
    summary = summary_fields(run)
    assert summary["result"] == "unchanged" and summary["listening"] is True
    assert summary["verified"][f"{postfix.smtp_service}/inet/smtpd_upstream_proxy_protocol"] == ""
    assert config_files(postfix) == before
    assert not (postfix.config_dir / "proxymx-backup").exists()


def test_a_failed_revert_rolls_back_to_the_configuration_it_found(
    running_postfix: LocalPostfix, tmp_path: Path
) -> None:
    # Given a configured Postfix, and a reload that applies the change but then reports failure
    postfix = running_postfix
    assert run_document(params(postfix), mail_config=postfix.config_dir).exit_code == 0
    configured = config_files(postfix)
    failing = wrapped_path(
        tmp_path / "bin", postfix='if [ "$1" = reload ]; then /usr/sbin/postfix reload; exit 1; fi'
    )

    # When the revert runs
    run = run_document(params(postfix, Mode="revert"), mail_config=postfix.config_dir, env=failing)

    # Then it fails, restores the configured files, and Postfix reads the header again
    assert run.exit_code != 0
    summary = summary_fields(run)
    assert summary["result"] == "failed" and summary["mode"] == "revert" and summary["listening"] is False
    assert "rolling back" in run.stderr
    assert config_files(postfix) == configured
    replies = smtp_replies(postfix.smtp_port, header_to(postfix))
    assert replies[0].startswith("220") and replies[-1].startswith("221"), replies


def test_revert_overrides_a_global_smtpd_header_setting_only_on_the_services_in_scope(
    new_postfix: LocalPostfix,
) -> None:
    # Given main.cf asking every smtpd for a header (set by hand: the document never does), a
    # submission service on 587 in SmtpPorts, and the MX service served by plain smtpd
    postfix = new_postfix
    address = loopback_address()
    submission = f"{address}:587"
    postfix.postconf("-M", f"{submission}/inet={submission} inet n - n - - smtpd")
    postfix.postconf("-e", "smtpd_upstream_proxy_protocol=haproxy", "smtpd_upstream_proxy_timeout=1s")
    postfix.start()

    # When the document runs in revert mode for both ports
    run = run_document(
        params(postfix, SmtpPorts=f"{postfix.smtp_port},587", Mode="revert"), mail_config=postfix.config_dir
    )

    # Then main.cf keeps its setting (services outside SmtpPorts keep what the operator gave them),
    # each in-scope smtpd gets an empty override, and both greet a client without a header
    assert run.exit_code == 0, run.stdout + run.stderr
    assert summary_fields(run)["result"] == "reverted"
    assert postfix.postconf("-h", "smtpd_upstream_proxy_protocol").strip() == "haproxy"
    for service in (postfix.smtp_service, submission):
        assert postfix.postconf("-P", f"{service}/inet/smtpd_upstream_proxy_protocol").strip().endswith(" =")
    for port, host in ((postfix.smtp_port, "127.0.0.1"), (587, address)):
        assert smtp_replies(port, host=host)[0].startswith("220")

    # And a second revert finds nothing to change
    again = run_document(
        params(postfix, SmtpPorts=f"{postfix.smtp_port},587", Mode="revert"), mail_config=postfix.config_dir
    )
    assert again.exit_code == 0, again.stdout + again.stderr
    assert summary_fields(again)["result"] == "unchanged"


def test_a_revert_dry_run_prints_the_plan_and_writes_nothing(running_postfix: LocalPostfix) -> None:
    # Given a configured Postfix
    postfix = running_postfix
    assert run_document(params(postfix), mail_config=postfix.config_dir).exit_code == 0
    configured = config_files(postfix)

    # When a revert dry run runs
    run = run_document(params(postfix, Mode="revert", DryRun="true"), mail_config=postfix.config_dir)

    # Then it prints the removals it would make, and writes nothing
    assert run.exit_code == 0, run.stdout + run.stderr
    summary = summary_fields(run)
    assert summary["result"] == "dry-run" and summary["mode"] == "revert"
    assert "plan: postconf -X 'postscreen_upstream_proxy_protocol'" in run.stdout
    assert config_files(postfix) == configured
