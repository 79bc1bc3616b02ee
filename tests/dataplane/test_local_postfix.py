"""The local Postfix helper never leaks its master (issue 9, finding 9)."""

from __future__ import annotations

from pathlib import Path

from proxymx_tools.postfix import LocalPostfix


def test_stop_ends_the_master_even_when_main_cf_no_longer_parses(running_postfix: LocalPostfix) -> None:
    # Given a running private Postfix whose main.cf was then broken (postfix stop/status refuse it)
    pid = int((running_postfix.queue_dir / "pid" / "master.pid").read_text().split()[0])
    assert _alive(pid)
    main_cf = running_postfix.config_dir / "main.cf"
    main_cf.write_text(main_cf.read_text() + "\nthis line has no equals sign\n")
    assert running_postfix.postfix("status", check=False).returncode != 0
    # When the helper stops it
    running_postfix.stop()
    # Then its master is gone (or a zombie no init has reaped yet: it no longer runs)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
