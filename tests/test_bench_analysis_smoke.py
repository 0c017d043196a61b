"""`benchmarks/bench_analysis.py --quick` still runs, as a real process, and prints its lines.

Nothing here judges speed: the benchmark prints numbers measured in one run.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH_ANALYSIS = REPO / "benchmarks" / "bench_analysis.py"


@pytest.mark.slow
@pytest.mark.slow
def test_quick_analysis_benchmark_reports_speed_ups_and_analysis_times() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH_ANALYSIS), "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    out = done.stdout
    assert re.search(r"^  serial\s+\d+\.\d+ s", out, re.M), out
    assert re.search(
        r"^  process pool, 2 workers\s+\d+\.\d+ s  speed-up \d+\.\d+x .*identical to serial: True",
        out,
        re.M,
    ), out
    # dask is optional: either its line or the note that it was skipped
    assert re.search(r"^  dask.*(identical to serial: True|skipped)", out, re.M), out
    assert re.search(r"^  verdict \+ views \+ timeline: \d+\.\d+ s", out, re.M), out
    assert re.search(r"^  verdict: (SAFE|UNSAFE): ", out, re.M), out
