"""The command line (leadersim.cli), run as users run it: as a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from leadersim.cli import DEMO_LEASE_DURATION, main

# See tests/test_lab.py: the successor's start and the dead leader's last renewal stamp.
STAMP_TOLERANCE = 0.05


def run_cli(*args: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leadersim", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
def test_demo_kills_the_leader_and_another_member_takes_over_after_its_lease(
    tmp_path: Path,
) -> None:
    result = run_cli("demo", "--db", str(tmp_path / "demo.db"))
    out = result.stdout
    assert result.returncode == 0, out + result.stderr

    elected = re.search(r"^(n\d) leads: elected", out, re.MULTILINE)
    failover = re.search(
        r"^(n\d) leads: failover took ([\d.]+) s after the kill, "
        r"([\d.]+) s after (n\d)'s last renewal",
        out,
        re.MULTILINE,
    )
    assert elected is not None, out
    assert failover is not None, out
    successor, _, since_renewal, killed = failover.groups()
    assert killed == elected.group(1)
    assert successor != killed
    assert float(since_renewal) >= DEMO_LEASE_DURATION - STAMP_TOLERANCE
    assert f"Killing {killed} with SIGKILL" in out
    assert "PRAGMA integrity_check: ok" in out
    # No member outlives the demo (they were its children; all were waited for).
    for pid in map(int, re.findall(r"\(pid (\d+)\)", out)):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_member_with_an_empty_id_exits_with_the_config_error(tmp_path: Path) -> None:
    result = run_cli("member", "--db", str(tmp_path / "e.db"), "--id", "", timeout=30)
    assert result.returncode == 1
    assert "id must not be empty" in result.stderr


def test_demo_refuses_fewer_than_two_members(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--nodes", "1"])
    assert exit_info.value.code == 2
    assert "a failover needs at least 2 members" in capsys.readouterr().err
