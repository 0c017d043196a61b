"""The benchmark scripts still run: `benchmarks/bench_sqlite.py --quick` as a real process.

Benchmarks print numbers measured in one run; nothing here judges speed. These tests only
keep the scripts from rotting as the package changes under them.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH_SQLITE = REPO / "benchmarks" / "bench_sqlite.py"
TRACE_DIGESTS = REPO / "benchmarks" / "trace_digests.py"


@pytest.mark.slow
def test_quick_sqlite_benchmark_exits_cleanly_and_reports_its_measurements(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH_SQLITE), "--quick", "--dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    # The round trip: one ratio line for SQLite's own synchronous setting (the build's
    # default), one for NORMAL; each a real number.
    ratios = re.findall(
        r"^ratio SQLStorage/sqlite3 = (\d+\.\d+)x \(synchronous=(\w+);", done.stdout, re.M
    )
    assert len(ratios) == 2, done.stdout
    assert ratios[1][1] == "NORMAL", done.stdout
    assert all(float(ratio) > 0 for ratio, _ in ratios)
    # The capacity runs, at the default interval and at 0.25 s: a row for the quick N and
    # a summary line each.
    assert len(re.findall(r"^\s+10\s+\d+\.\d", done.stdout, re.M)) == 2, done.stdout
    for interval in ("2", "0.25"):
        assert re.search(
            rf"^largest N with zero spurious loss of leadership = \d+ of \[10\] at interval "
            rf"{re.escape(interval)} s",
            done.stdout,
            re.M,
        ), done.stdout
        # Its SQLite files went where it was told.
        assert (tmp_path / f"capacity-10-{interval}.db").exists()


@pytest.mark.slow
def test_trace_digests_are_the_same_for_one_seed_and_differ_between_seeds() -> None:
    spec = importlib.util.spec_from_file_location("trace_digests", TRACE_DIGESTS)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    first = module.digest(("leader-crash", "base", None, 1))
    assert re.fullmatch(r"leader-crash\[base\]#1 \d+ [0-9a-f]{16}", first), first
    assert module.digest(("leader-crash", "base", None, 1)) == first
    assert module.digest(("leader-crash", "base", None, 2)).split()[2] != first.split()[2]
    label, mapping, seed = module.EXTRA[0]
    extra = module.digest((label, None, json.dumps(mapping), seed))
    assert extra.startswith(f"{label}#{seed} ")
