"""Bad scenario files through the console script, as a user meets them.

Each case runs ``leadersim simulate FILE --trace OUT`` in a subprocess (the venv's own
console script) and must exit with code 2, print one line on stderr that names the file
and the problem, show no traceback, and write nothing (``OUT`` is never created). The
processes of all cases are started together, so the module costs about one start-up.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

#: case: (file name, file text or None for a missing file, words the error line holds)
CASES: dict[str, tuple[str, str | None, tuple[str, ...]]] = {
    "unknown fault target": (
        "target.yaml",
        "nodes: 3\nduration: 60\nfaults:\n  - {at: 30, kind: crash, target: n9}\n",
        ("faults[0]", "'n9' is not a node of this scenario", "allowed", "'leader'"),
    ),
    "fault after the end": (
        "late.yaml",
        "duration: 60\nfaults:\n  - {at: 90, kind: pause, target: leader, duration: 5}\n",
        ("faults[0]", "after the run's end", "allowed: 0 <= at < 60"),
    ),
    "nodes_config for a missing node": (
        "config.yaml",
        "nodes: 3\nnodes_config: {n5: {lease_duration: 15}}\n",
        ("nodes_config", "'n5' is not a node", "allowed: ['n1', 'n2', 'n3']"),
    ),
    "clocks for a missing node": (
        "clocks.yaml",
        "nodes: 2\nclocks: {n3: {drift_ppm: 500}}\n",
        ("clocks", "'n3' is not a node", "allowed: ['n1', 'n2']"),
    ),
    "malformed YAML": (
        "broken.yaml",
        "nodes: 3\nfaults:\n  - {at: 30, kind: crash, target: n1\nduration: 60\n",
        ("cannot parse YAML", "line 4"),
    ),
    "malformed JSON": (
        "broken.json",
        '{"nodes": 3, "duration": }',
        ("cannot parse JSON", "line 1, column 26"),
    ),
    "missing file": ("absent.yaml", None, ("absent.yaml", "no such scenario file")),
    "at: NaN": (
        "nan.yaml",
        "faults:\n  - {at: .nan, kind: crash, target: n1}\n",
        ("faults[0]", "'at' must be a finite number of seconds >= 0", "nan"),
    ),
    "duration: inf": ("inf.yaml", "duration: .inf\n", ("duration must be a finite", "inf")),
    "NaN in JSON": ("nan.json", '{"duration": NaN}', ("duration must be a finite", "nan")),
    "rate: 7": (
        "rate.yaml",
        "faults:\n  - {at: 30, kind: busy, target: n1, rate: 7, duration: 5}\n",
        ("'rate' is a probability", "allowed: 0 to 1", "7"),
    ),
    "negative latency": (
        "latency.yaml",
        "storage: {latency: {dist: constant, value_s: -0.01}}\n",
        ("storage.latency.value_s", ">= 0"),
    ),
    "restart of a mistyped id": (
        "restart.yaml",
        "faults:\n  - {at: 30, kind: crash, target: n1}\n"
        "  - {at: 40, kind: restart, target: n11}\n",
        ("faults[1]", "'n11' is not a node", "'start' fault"),
    ),
    "fault:7 with no fault 7": (
        "ref.yaml",
        "faults:\n  - {at: 30, kind: crash, target: n1}\n"
        "  - {at: 40, kind: restart, target: 'fault:7'}\n",
        ("faults[1]", "'fault:7' names no earlier fault", "fault:0"),
    ),
    "upper-case extension, bad content": (
        "Upper.YAML",
        "nodes: 3\nfaults:\n  - {at: 30, kind: crash, target: n4}\n",
        ("Upper.YAML", "'n4' is not a node"),
    ),
}


def console_script() -> str:
    """The ``leadersim`` entry point of the interpreter running the tests."""
    script = Path(sys.executable).with_name("leadersim")
    if not script.exists():
        pytest.skip(f"no leadersim console script next to {sys.executable}")
    return str(script)


@pytest.fixture(scope="module")
def outcomes(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[subprocess.CompletedProcess[str], Path, Path]]:
    folder = tmp_path_factory.mktemp("bad-input")
    script = console_script()
    running: dict[str, tuple[subprocess.Popen[str], Path, Path]] = {}
    for case, (name, text, _words) in CASES.items():
        case_dir = folder / case.replace(" ", "_").replace(":", "")
        case_dir.mkdir()
        path = case_dir / name
        if text is not None:
            path.write_text(text, encoding="utf-8")
        trace = case_dir / "trace.jsonl"
        command = [script, "simulate", str(path), "--trace", str(trace)]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        running[case] = (process, path, trace)
    done = {}
    for case, (process, path, trace) in running.items():
        stdout, stderr = process.communicate(timeout=120)
        result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        done[case] = (result, path, trace)
    return done


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_scenario_file_exits_2_with_one_line_and_writes_nothing(
    case: str, outcomes: dict[str, tuple[subprocess.CompletedProcess[str], Path, Path]]
) -> None:
    result, path, trace = outcomes[case]
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    (line,) = lines
    assert line.startswith(f"leadersim simulate: {path}: "), line
    for words in CASES[case][2]:
        assert words in line, (words, line)
    assert not trace.exists()
