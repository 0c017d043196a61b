"""The command line (leadersim.cli), run as users run it: as a subprocess."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from leadersim.cli import CSV_TABLES, DEMO_LEASE_DURATION, EXIT_UNSAFE, main

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
    assert result.returncode == 2  # a config error is a usage error
    assert "id must not be empty" in result.stderr


def test_demo_refuses_fewer_than_two_members(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--nodes", "1"])
    assert exit_info.value.code == 2
    assert "a failover needs at least 2 members" in capsys.readouterr().err


# ---------------------------------------------------------------------------- simulate etc.
# These run the installed console script, as a user does.

SCRIPT = Path(sys.executable).with_name("leadersim")
#: A short run: leader-crash crashes the leader at t=60 and restarts it at t=90.
SHORT = ("--set", "duration=100")


def leadersim(
    *args: str, cwd: Path | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """The usage error of ``result``: exit code 2, one line on stderr, nothing on stdout."""
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""  # no verdict: nothing was run
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_the_console_script_is_installed() -> None:
    assert SCRIPT.is_file()


def test_an_incident_replay_is_unsafe_by_default_and_its_harmless_variant_safe() -> None:
    unsafe = leadersim("simulate", "github-2018-partition", "--seed", "1")
    assert unsafe.returncode == EXIT_UNSAFE, unsafe.stderr
    assert unsafe.stdout.startswith("github-2018-partition[C=33] seed=1 (300 s): UNSAFE")
    harmless = leadersim("simulate", "github-2018-partition", "--variant", "C=0.1", "--seed", "1")
    assert harmless.returncode == 0, harmless.stderr
    assert harmless.stdout.startswith("github-2018-partition[C=0.1] seed=1 (300 s): SAFE")


def test_usage_errors_are_one_line_with_exit_code_2(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("x", encoding="utf-8")
    cases = {
        ("simulate", "hbase-juliet-pause[P=7]"): ("no variant 'P=7'", "P=79-10/2/8"),
        ("simulate", "leader-crahs"): ("unknown scenario 'leader-crahs'", "leader-crash"),
        ("simulate", str(tmp_path / "Missing.YAML")): ("Missing.YAML: no such scenario file",),
        ("simulate", "leader-crash", "--set", "durration=3"): ("'durration'", "allowed"),
        ("simulate", "leader-crash", "--set", "=3"): ("--set needs KEY=VALUE",),
        ("simulate", "leader-crash", "--trace", str(tmp_path / "t.csv")): (
            "JSON lines",
            ".jsonl",
        ),
        ("simulate", "leader-crash", "--plot", str(tmp_path / "p.gif")): (".png, .svg, .pdf",),
        ("simulate", "leader-crash", "--trace", str(tmp_path / "no" / "t.jsonl")): (
            "does not exist",
        ),
        ("simulate", "leader-crash", "--plot", str(tmp_path / "not-a-dir" / "p.png")): (
            "is not a directory",
        ),
        ("simulate", "leader-crash", "--csv", str(tmp_path / "not-a-dir")): ("not a directory",),
        ("simulate", "leader-crash", "--csv", str(tmp_path / "tables.csv")): ("takes a directory",),
        ("simulate", "leader-crash", "--csv", str(tmp_path / "no" / "tables")): ("does not exist",),
        ("scenarios", "--show", "ambiguous-renew[c]"): ("no variant 'c'", "a, b, b-15/2/8"),
        ("sweep", "leader-crash", "--grid", "config.lease_duration=10,12", "--plot", "h.png"): (
            "two --grid keys",
        ),
        ("sweep", "leader-crash", "--grid", "config.lease_duration=10", "--value", "x"): (
            "--value 'x'",
            "overlap_s",
        ),
        ("sweep", "leader-crash", "--grid", "lease=10,12"): ("unknown sweep parameter",),
    }
    for args, fragments in cases.items():
        one_line_error(leadersim(*args, cwd=tmp_path), *fragments)
    # Nothing was written by any of them.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-dir"]


def test_argparse_errors_name_no_internal_function(tmp_path: Path) -> None:
    for args in (
        ("demo", "--nodes", "three"),
        ("sweep", "leader-crash", "--grid", "duration=70", "--seeds", "0"),
        ("sweep", "leader-crash", "--grid", "duration=70", "--workers", "many"),
    ):
        result = leadersim(*args, cwd=tmp_path)
        assert result.returncode == 2
        assert "expected a whole number" in result.stderr or "at least 1" in result.stderr
        assert not re.search(r"\b_\w+", result.stderr), result.stderr


def test_help_documents_the_exit_codes() -> None:
    for command in ((), ("simulate",), ("sweep",)):
        result = leadersim(*command, "--help")
        assert result.returncode == 0
        assert "exit codes:" in result.stdout
        assert f"{EXIT_UNSAFE}  simulate: the run was unsafe" in result.stdout


def test_simulate_writes_the_trace_the_timeline_and_the_tables(tmp_path: Path) -> None:
    from leadersim import simulate

    result = leadersim(
        "simulate", "leader-crash", *SHORT, "--seed", "2",
        "--trace", "run.JSONL", "--plot", "timeline.png", "--csv", "tables",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("leader-crash seed=2 (100 s): SAFE")
    expected = simulate("leader-crash", seed=2, duration=100)
    assert (tmp_path / "run.JSONL").read_text(encoding="utf-8") == expected.to_jsonl()
    assert (tmp_path / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "timeline.png").stat().st_size > 10_000  # a drawn picture, not empty
    assert sorted(p.stem for p in (tmp_path / "tables").iterdir()) == sorted(CSV_TABLES)
    trace = (tmp_path / "tables" / "trace.csv").read_text(encoding="utf-8").splitlines()
    assert len(trace) == len(expected.events) + 1  # a header and a row per event
    failovers = (tmp_path / "tables" / "failovers.csv").read_text(encoding="utf-8").splitlines()
    assert len(failovers) == 1 + expected.verdict.failovers
    # An unwritable path for one output stops the run before anything else is written.
    (tmp_path / "again").mkdir()
    one_line_error(
        leadersim(
            "simulate", "leader-crash", "--plot", "again/t.svg", "--csv", "again/tables",
            "--trace", "missing/run.jsonl", cwd=tmp_path,
        ),
        "--trace missing/run.jsonl",
    )  # fmt: skip
    assert list((tmp_path / "again").iterdir()) == []


def test_a_timeline_in_svg_and_pdf(tmp_path: Path) -> None:
    result = leadersim(
        "simulate", "leader-crash", *SHORT, "--plot", "t.svg", cwd=tmp_path
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "<svg" in (tmp_path / "t.svg").read_text(encoding="utf-8")[:500]
    assert main(["simulate", "leader-crash", *SHORT, "--plot", str(tmp_path / "t.PDF")]) == 0
    assert (tmp_path / "t.PDF").read_bytes()[:5] == b"%PDF-"


def test_an_unsafe_run_exits_3_and_still_writes_its_outputs(tmp_path: Path) -> None:
    code = main(
        ["simulate", "leader-pause-longer-than-lease", "--trace", str(tmp_path / "t.jsonl")]
    )
    assert code == EXIT_UNSAFE
    assert (tmp_path / "t.jsonl").stat().st_size > 0


def test_scenarios_lists_the_variants_and_marks_the_default() -> None:
    result = leadersim("scenarios")
    assert result.returncode == 0
    assert "variants: C=0.1, C=33 (default), C=33-fencing" in result.stdout
    assert "leadersim scenarios --show NAME[VARIANT]" in result.stdout


def test_show_prints_yaml_that_runs_as_a_file_to_the_same_trace(tmp_path: Path) -> None:
    name = "leader-pause-shorter-than-slack[b]"
    shown = leadersim("scenarios", "--show", name)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("# leader-pause-shorter-than-slack[b] (A5):")
    (tmp_path / "a5.yml").write_text(shown.stdout, encoding="utf-8")
    from_file = leadersim("simulate", "a5.yml", "--seed", "3", "--trace", "f.jsonl", cwd=tmp_path)
    named = leadersim("simulate", name, "--seed", "3", "--trace", "n.jsonl", cwd=tmp_path)
    assert from_file.returncode == named.returncode == 0, from_file.stderr + named.stderr
    assert from_file.stdout.splitlines()[0] == named.stdout.splitlines()[0]
    assert (tmp_path / "f.jsonl").read_bytes() == (tmp_path / "n.jsonl").read_bytes()


def test_sweep_prints_a_table_and_writes_the_runs_and_a_heatmap(tmp_path: Path) -> None:
    result = leadersim(
        "sweep", "slow-callback-stop", "--set", "duration=80",
        "--grid", "config.lease_duration=10,14", "--grid", "config.renew_deadline=4,10",
        "--seeds", "2", "--workers", "2", "--csv", "runs.csv", "--plot", "heat.png",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["config.lease_duration", "config.renew_deadline", "unsafe"]
    # 10/2/10 is invalid (D > L - I); 14/2/4 leaves 8 s of slack, more than C = 8 s needs.
    assert re.match(r"\s*10\s+10\s+invalid: .*RenewDeadline", lines[2]), lines[2]
    assert re.match(r"\s*14\s+4\s+0/2\s+0\.000", lines[3]), lines[3]
    assert re.match(r"\s*10\s+4\s+2/2\s", lines[1]), lines[1]
    rows = (tmp_path / "runs.csv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 1 + 4 * 2
    assert rows[0].startswith("config.lease_duration,config.renew_deadline,seed,level,safe,")
    assert (tmp_path / "heat.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_progress_bar_when_stderr_is_not_a_terminal() -> None:
    result = leadersim("simulate", "leader-crash", *SHORT)
    assert result.returncode == 0
    assert "sim s" not in result.stderr
    # What remains on stderr is the config's safety warning (10/2/8 leaves no slack).
    assert all(line.startswith("warning: ") for line in result.stderr.splitlines())


def test_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    parent, child = pty.openpty()
    # A terminal of 24 x 100 characters (a new pty has 0 columns, where tqdm draws nothing).
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        process = subprocess.Popen(
            [str(SCRIPT), "simulate", "leader-crash", "--set", "duration=3000"],
            stdout=subprocess.PIPE,
            stderr=child,
            stdin=subprocess.DEVNULL,
        )
        os.close(child)
        seen = b""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ready, _, _ = select.select([parent], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(parent, 4096)
                except OSError:  # the child closed its end
                    break
                if not chunk:
                    break
                seen += chunk
            elif process.poll() is not None:
                break
        stdout, _ = process.communicate(timeout=60)
    finally:
        os.close(parent)
    assert process.returncode == 0
    assert b"sim s" in seen  # tqdm's bar, counting simulated seconds
    assert b"Traceback" not in seen
    assert stdout.startswith(b"leader-crash seed=0 (3000 s): SAFE")


def test_a_csv_table_keeps_details_as_json(tmp_path: Path) -> None:
    assert main(["simulate", "leader-crash", *SHORT, "--csv", str(tmp_path)]) == 0
    import pandas as pd

    trace = pd.read_csv(tmp_path / "trace.csv")
    details = [json.loads(d) for d in trace["details"].dropna()]
    assert any(d for d in details)  # non-empty details parse back as JSON objects


README = Path(__file__).resolve().parents[1] / "README.md"


def readme_shell_commands() -> list[str]:
    """The ``leadersim`` commands of the README's shell blocks (continuations joined)."""
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", text.split("## Break it in the simulator")[1], re.S)
    assert len(blocks) >= 2, "the simulator's block and the real-runs block"
    return [
        c.strip() for block in blocks for c in block.replace("\\\n", " ").splitlines() if c.strip()
    ]


@pytest.mark.slow
@pytest.mark.timeout(900)  # every command of the README, real runs and a comparison included
def test_the_readmes_shell_commands_work_as_printed(tmp_path: Path) -> None:
    commands = readme_shell_commands()
    assert len(commands) >= 6
    env = {**os.environ, "PATH": f"{SCRIPT.parent}{os.pathsep}{os.environ['PATH']}"}
    for command in commands:
        assert command.startswith("leadersim ")
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env=env,
        )
        assert "Traceback" not in done.stderr, command
        promised = re.search(r"exit (\d)", command)
        assert done.returncode == (int(promised.group(1)) if promised else 0), (
            command + "\n" + done.stderr
        )
    made_files = ("timeline.png", "tables/trace.csv", "run.jsonl", "sweep.csv", "heatmap.png")
    for made in (*made_files, "smallest.yaml"):
        assert (tmp_path / made).stat().st_size > 0, made
    compared = json.loads((tmp_path / "compare.json").read_text(encoding="utf-8"))
    assert compared["lab"]["runs"] == compared["sim"]["runs"] == 3
    assert (tmp_path / "juliet.yaml").read_text(encoding="utf-8").startswith("# hbase-juliet")


# ---------------------------------------------------------------------- lab, --scale


@pytest.mark.slow
def test_lab_runs_a_scaled_entry_for_real_and_prints_its_verdict(tmp_path: Path) -> None:
    traces = tmp_path / "traces"
    result = run_cli(
        "lab", "leader-pause-longer-than-lease", "--scale", "0.1", "--set", "duration=10",
        "--members", "3", "--db", str(tmp_path / "e.db"), "--trace-dir", str(traces),
        "--plot", str(tmp_path / "t.png"), "--csv", str(tmp_path / "tables"),
    )  # fmt: skip
    # A pause longer than the lease, unfenced: the paused leader's pending write is stale.
    assert result.returncode == EXIT_UNSAFE, result.stdout + result.stderr
    line = result.stdout.splitlines()[0]
    assert line.startswith("leader-pause-longer-than-lease seed=0 lab (10 s): UNSAFE"), line
    assert (tmp_path / "t.png").stat().st_size > 0
    assert (tmp_path / "tables" / "writes.csv").stat().st_size > 0
    assert sorted(p.name for p in traces.glob("*.jsonl")) == [
        "lab.jsonl", "n1.jsonl", "n2.jsonl", "n3.jsonl",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("clock-drift-fast-follower",), "clocks: ['n2'] cannot be set in the real lab"),
        (("wall-clock-step",), "kind 'clock_step' cannot run in the real lab"),
        (("leader-crash", "--scale", "0"), "scale must be a finite number > 0, got 0.0"),
        (("leader-crash", "--scale", "nan"), "scale must be a finite number > 0, got nan"),
        (("leader-crash", "--members", "0"), "give at least 1 member"),
        (("leader-crash", "--db", "/no/such/dir/e.db"), "directory /no/such/dir does not exist"),
        (("no-such-entry",), "unknown scenario 'no-such-entry'"),
    ],
)
def test_lab_refuses_bad_input_in_one_line_before_starting_anything(
    args: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(["lab", *args])
    except SystemExit as exc:  # argparse's own checks (e.g. --members 0) exit directly
        code = exc.code  # type: ignore[assignment]
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len([line for line in err.splitlines() if line.startswith("leadersim")]) == 1, err
    assert "Traceback" not in err


def test_simulate_scale_runs_the_scenario_in_scaled_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["simulate", "leader-crash", "--scale", "0.1", "--set", "duration=12"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    # 300 s scaled by 0.1 is 30 s; the --set applies after scaling.
    assert line.startswith("leader-crash seed=0 (12 s): SAFE"), line
    failover = float(re.search(r"failovers 1 \(median ([\d.]+)s\)", line).group(1))  # type: ignore[union-attr]
    assert 0.8 <= failover <= 1.2  # the catalogue's 8-12 s, scaled


def test_member_takes_its_settings_as_one_json_object(tmp_path: Path) -> None:
    settings = {"id": "", "db": str(tmp_path / "e.db")}
    result = run_cli("member", "--settings", json.dumps(settings), timeout=30)
    assert result.returncode == 2  # the same config check as with --id ''
    assert "id must not be empty" in result.stderr
    bad = run_cli("member", "--settings", '{"id": "n1", "db": "x", "colour": 1}', timeout=30)
    assert bad.returncode == 2
    assert "unknown key(s) ['colour']" in bad.stderr


def test_member_with_a_trace_records_its_storage_operations_for_a_latency_fit(
    tmp_path: Path,
) -> None:
    from leadersim.analysis.calibration import round_trips
    from leadersim.trace import EventKind, read_jsonl

    trace = tmp_path / "n1.jsonl"
    args = ["member", "--db", str(tmp_path / "e.db"), "--id", "n1", "--trace", str(trace)]
    timings = ["--lease", "1", "--interval", "0.1", "--deadline", "0.8"]
    child = subprocess.Popen(
        [sys.executable, "-m", "leadersim", *args, *timings],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if trace.exists() and trace.read_text().count('"renew_ok"') >= 5:
                break
            time.sleep(0.05)
    finally:
        child.terminate()
        _, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    events = read_jsonl(trace)
    assert sum(e.kind is EventKind.RENEW_OK for e in events) >= 5, err
    # Each renewal's read and write, with their round trips: what fit_latency reads.
    trips = round_trips(events)
    assert len(trips["get"]) >= 5, trips.keys()
    assert len(trips["update"]) >= 5, trips.keys()
