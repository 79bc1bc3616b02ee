"""Two runs of the document on one Postfix never interleave (issue 9.1).

A duplicate launch event or a Reconcile re-drive can run the document twice at once on one
instance. Without a lock the second run planned and backed up the state from before the first
run's edits, failed late, and its rollback undid the configuration the first run had proven.
"""

from __future__ import annotations

import fcntl
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from document_support import config_files, params, proxy_v1, smtp_replies, summary_fields, wrapped_path
from proxymx_tools.document import DocumentRun, run_document
from proxymx_tools.postfix import LocalPostfix


def lock_time(run: DocumentRun, event: str) -> float:
    match = re.search(rf"^proxymx: lock .*{event} at (\d+\.\d+)$", run.stdout, re.MULTILINE)
    assert match, f"no 'lock ... {event} at' line in:\n{run.stdout}"
    return float(match.group(1))


def lock_file(postfix: LocalPostfix) -> Path:
    return postfix.config_dir / "proxymx.lock"


def test_a_second_run_that_fails_late_never_undoes_what_the_first_run_proved(
    running_postfix: LocalPostfix, tmp_path: Path
) -> None:
    # Given run A, which edits slowly (each postconf -e waits 1 s, the first one leaves a mark),
    # and run B, started while A is in its first edit, asking for another header timeout, whose
    # reload applies its configuration and then fails, 2 s later: a late failure, after its edits
    postfix = running_postfix
    editing = tmp_path / "a-is-editing"
    slow_edits = wrapped_path(
        tmp_path / "a-bin", postconf=f'if [ "$1" = -e ]; then touch {editing}; sleep 1; fi'
    )
    late_failure = wrapped_path(
        tmp_path / "b-bin",
        postfix='if [ "$1" = reload ]; then /usr/sbin/postfix reload; sleep 2; '
        'echo "reload failed" >&2; exit 1; fi',
    )

    # When both run at (nearly) the same time, A first
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(run_document, params(postfix), mail_config=postfix.config_dir, env=slow_edits)
        deadline = time.monotonic() + 10
        while not editing.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert editing.exists(), "run A never started editing"
        second = pool.submit(
            run_document,
            params(postfix, UpstreamProxyTimeout="2s"),
            mail_config=postfix.config_dir,
            env=late_failure,
        )
        run_a, run_b = first.result(), second.result()

    # Then A configured and proved; B waited for the lock, failed and rolled back
    assert run_a.exit_code == 0, run_a.stdout + run_a.stderr
    assert run_a.summary is not None and run_a.summary.proves_configuration
    assert run_b.exit_code != 0
    assert summary_fields(run_b)["result"] == "failed"
    assert "reload failed" in (summary_fields(run_b)["reason"] or "")
    assert "waiting up to" in run_b.stdout
    assert "rolling back" in run_b.stderr
    # And the runs were serialized: B got the lock only once A had released it
    assert lock_time(run_b, "acquired") >= lock_time(run_a, "released")
    # And B's backup, taken inside the lock, is what A left, so its rollback restored A's work
    backups = sorted((postfix.config_dir / "proxymx-backup").iterdir())
    assert len(backups) == 2
    b_backup = next(path for path in backups if path.name.endswith(f"-{pid_of(run_b)}"))
    restored = config_files(postfix)
    assert restored == {name: (b_backup / name).read_bytes() for name in ("main.cf", "master.cf")}
    assert postfix.postconf("-h", "postscreen_upstream_proxy_protocol").strip() == "haproxy"
    assert postfix.postconf("-h", "postscreen_upstream_proxy_timeout").strip() == "1s"
    # And Postfix answers a client behind the load balancer (a PROXY header) with 220
    replies = smtp_replies(postfix.smtp_port, proxy_v1("127.0.0.9", "127.0.0.1", 40001, postfix.smtp_port))
    assert replies[0].startswith("220") and replies[-1].startswith("221"), replies
    # And the lock is free again
    with lock_file(postfix).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)


def pid_of(run: DocumentRun) -> str:
    match = re.search(r"^proxymx: backup: .*-(\d+)$", run.stdout, re.MULTILINE)
    assert match, run.stdout
    return match.group(1)


def test_a_run_that_cannot_get_the_lock_fails_cleanly_and_writes_nothing(
    running_postfix: LocalPostfix,
) -> None:
    # Given another run holding the configuration directory's lock, and a 1 s lock wait
    postfix = running_postfix
    before = config_files(postfix)
    offset = postfix.log_offset()
    with lock_file(postfix).open("a") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)

        # When the document runs
        run = run_document(params(postfix), mail_config=postfix.config_dir, env={"PROXYMX_LOCK_WAIT": "1"})

    # Then it fails, says why, and neither writes, rolls back nor reloads anything
    assert run.exit_code != 0
    summary = summary_fields(run)
    assert summary["result"] == "failed" and summary["changed"] == []
    assert "lock" in summary["reason"] and "nothing was changed" in summary["reason"]
    assert "rolling back" not in run.stderr
    assert config_files(postfix) == before
    assert not (postfix.config_dir / "proxymx-backup").exists()
    assert "reload" not in postfix.log_text()[offset:]


def test_a_postfix_the_script_starts_does_not_inherit_the_lock(new_postfix: LocalPostfix) -> None:
    # Given Postfix not running
    postfix = new_postfix

    # When the document configures it and starts it
    run = run_document(params(postfix), mail_config=postfix.config_dir)
    assert run.exit_code == 0, run.stdout + run.stderr
    assert "started" in run.stdout

    # Then the running master does not hold the lock: the next run can take it at once
    with lock_file(postfix).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
