"""`benchmarks/bench_sim.py --against REF --quick` still runs, as real processes.

Nothing here judges speed: the test keeps the side-by-side comparison from rotting. It
compares the working tree with ``HEAD`` (any commit works; ``HEAD`` always exists) and
checks that each measurement got its line with a ratio.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH_SIM = REPO / "benchmarks" / "bench_sim.py"


@pytest.mark.slow
def test_quick_comparison_against_a_commit_prints_every_ratio() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs the git checkout (git archive exports the compared commit)")
    done = subprocess.run(
        [sys.executable, str(BENCH_SIM), "--against", "HEAD", "--quick", "--repeats", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    for name in ("hour", "N=5", "N=100", "memory"):
        assert re.search(rf"^  {re.escape(name)} +ref .*ref/this \d+\.\d\dx", done.stdout, re.M), (
            done.stdout
        )
    assert len(re.findall(r"per-renewal cost N=100 / N=5 \((ref|this)\): \d", done.stdout)) == 2
