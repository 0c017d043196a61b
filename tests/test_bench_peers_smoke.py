"""`benchmarks/bench_peers.py` still runs, tiny, as a real process, on every loop it can.

Nothing here judges speed: the test keeps the script from rotting, checks that each peer
installed here (the ``[bench]`` extra) got a row with a ratio, and that each one missing
was skipped with its reason printed rather than failing the run.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH_PEERS = REPO / "benchmarks" / "bench_peers.py"


@pytest.mark.slow
def test_tiny_peer_benchmark_gives_a_ratio_row_per_installed_loop() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH_PEERS), "--duration", "30", "--repeats", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    rows = dict(
        re.findall(r"^  (\S.*?)\s+\d+\.\d{3}\s+\d+\.\d{3}\s+(\d+\.\d\d)$", done.stdout, re.M)
    )
    assert rows.get("leadersim SimLoop") == "1.00", done.stdout  # the reference row
    for module, label in [
        ("looptime", "looptime (default, noop_cycles=42)"),
        ("detangle", "detangle"),
    ]:
        if importlib.util.find_spec(module) is None:
            assert f"skip {label}: {module} is not installed" in done.stdout, done.stdout
        else:
            assert float(rows[label]) > 0, done.stdout
    for name in ("seedloop", "simloop", "simloom"):
        if sys.version_info < (3, 12):
            assert re.search(rf"^skip {name}\b.*: needs Python >= 3\.12$", done.stdout, re.M), (
                done.stdout
            )
        elif importlib.util.find_spec(name) is not None:
            row = next(r for label, r in rows.items() if label.split()[0] == name)
            assert float(row) > 0, done.stdout
