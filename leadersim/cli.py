"""The ``leadersim`` command line.

``leadersim demo`` is the first thing to run: three members as real OS processes on one
SQLite file; it kills the leader and shows the failover. ``leadersim member`` runs one
member in the foreground (it is what the demo and :class:`~leadersim.lab.Lab` spawn).
``leadersim simulate`` runs a scenario in the deterministic simulator (``--plot``,
``--csv``, ``--trace`` save what it saw), ``leadersim sweep`` runs one over a grid of
values and seeds, ``leadersim lab`` runs a scenario for real (member processes, real
faults), and ``leadersim scenarios`` lists the catalogue (``--show`` prints an entry as a
scenario file).

Exit codes: 0 done (``simulate``, ``lab``: the run was safe), 2 a usage error (one line on
stderr, nothing run or written), 3 ``simulate``/``lab`` found the run unsafe; 1 is ``demo``'s and
``member``'s failure (and Python's own code for a crash).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leadersim.config import DEFAULT_LEASE_DURATION, DEFAULT_RENEW_DEADLINE, DEFAULT_RENEW_INTERVAL
from leadersim.errors import ConfigError, LeadersimError
from leadersim.storage.base import TABLE_NAME_ELECTION
from leadersim.trace import TraceEvent

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from leadersim.analysis.result import Result
    from leadersim.sim.scenario import Scenario

__all__ = ["EXIT_OK", "EXIT_UNSAFE", "EXIT_USAGE", "UsageError", "main"]

#: The demo's config: small, with slack, so that a failover takes a few seconds.
DEMO_LEASE_DURATION = 3.0
DEMO_RENEW_INTERVAL = 0.5
DEMO_RENEW_DEADLINE = 2.0
#: Seconds the demo lets the first leader lead (and renew) before it kills it.
DEMO_HOLD_DURATION = 1.0


#: Exit code: done; for ``simulate``, the run was safe.
EXIT_OK = 0
#: Exit code: a usage error (bad argument, scenario or output path); nothing was run.
EXIT_USAGE = 2
#: Exit code of ``simulate`` when the verdict is unsafe (``Result.verdict.safe`` false).
EXIT_UNSAFE = 3

#: Suffixes (any case) accepted for each output file.
TRACE_SUFFIXES = (".jsonl",)
PLOT_SUFFIXES = (".png", ".svg", ".pdf")
TABLE_SUFFIXES = (".csv",)
#: The tables ``simulate --csv DIR`` writes, one ``NAME.csv`` each: the Result's frames.
CSV_TABLES = (
    "trace",
    "intervals",
    "windows",
    "gaps",
    "terms",
    "failovers",
    "writes",
    "faults",
    "storage_ops",
    "committed_leader",
    "clocks",
)

_EXIT_CODES = f"""\
exit codes:
  {EXIT_OK}  the run was safe (sweep: the sweep ran)
  {EXIT_UNSAFE}  simulate: the run was unsafe (two leaders acted at once, or a stale write
     was accepted: the verdict says UNSAFE)
  {EXIT_USAGE}  usage error: a bad argument, an unknown scenario or variant, an invalid
     scenario, or an output path that cannot be written (checked before the run)
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code.

    A user's mistake (a :class:`~leadersim.LeadersimError` or an ``OSError`` reaching a
    subcommand's boundary) is one line on stderr and exit code 2, never a traceback.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    command = {
        "member": _member,
        "simulate": _simulate,
        "sweep": _sweep,
        "scenarios": _scenarios,
        "demo": _demo,
        "explore": _explore,
        "compare": _compare,
        "lab": _lab,
    }[args.command]
    try:
        return command(args)
    except BrokenPipeError:
        # The reader went away (`leadersim scenarios | head`): stop quietly, as a
        # process killed by SIGPIPE would, without a second error when stdout is flushed.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except UsageError as exc:
        return _usage(args.command, str(exc))
    except LeadersimError as exc:
        return _usage(args.command, str(exc))
    except OSError as exc:
        return _usage(args.command, _os_error(exc))
    except KeyboardInterrupt:
        print(f"\nleadersim {args.command}: interrupted", file=sys.stderr)
        return 130


class UsageError(Exception):
    """A command-line mistake found by the CLI itself (exit code 2, one line)."""


def _usage(command: str, message: str) -> int:
    print(f"leadersim {command}: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_USAGE


def _os_error(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


def _parser() -> argparse.ArgumentParser:
    from leadersim import __version__

    parser = argparse.ArgumentParser(
        prog="leadersim",
        description="Lease-based leader election: real processes and a deterministic simulator.",
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"leadersim {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="elect a leader among OS processes on one SQLite file, kill it, watch the failover",
        description=(
            "Start election members as separate OS processes on one SQLite file, show who "
            "leads, SIGKILL the leader, show the failover, stop the rest gracefully and "
            "check the database. Takes about ten seconds."
        ),
    )
    demo.add_argument("--db", type=Path, help="SQLite file to use (default: in a temporary dir)")
    demo.add_argument(
        "--url", help="a database URL instead, e.g. postgresql+asyncpg://user@host:5432/db"
    )
    demo.add_argument(
        "--nodes",
        type=_count(2, "a failover needs at least 2 members"),
        default=3,
        metavar="N",
        help="members (default: 3)",
    )
    demo.add_argument(
        "--trace-dir", type=Path, help="keep the members' JSON-lines traces and logs here"
    )

    member = commands.add_parser(
        "member",
        help="run one election member on a SQLite file until SIGTERM or Ctrl-C",
        description=(
            "Run one election member on a SQLite file. It leads (doing nothing) while it "
            "holds the lease; SIGTERM or Ctrl-C makes it release its lease and exit."
        ),
    )
    where = member.add_mutually_exclusive_group(required=True)
    where.add_argument("--db", type=Path, help="the shared SQLite file")
    where.add_argument("--url", help="or a database URL, e.g. mariadb+aiomysql://root@host/db")
    where.add_argument(
        "--settings",
        metavar="JSON|@FILE",
        help="everything at once: a JSON object of leadersim.lab.MemberSettings (or @FILE "
        "holding one), as the lab passes it; the other options are then not allowed",
    )
    member.add_argument("--id", help="this member's id (required without --settings)")
    member.add_argument(
        "--lease", type=float, metavar="SECONDS",
        help=f"lease duration (default: {DEFAULT_LEASE_DURATION:g})",
    )  # fmt: skip
    member.add_argument(
        "--interval", type=float, metavar="SECONDS",
        help=f"renew interval (default: {DEFAULT_RENEW_INTERVAL:g})",
    )  # fmt: skip
    member.add_argument(
        "--deadline", type=float, metavar="SECONDS",
        help=f"renew deadline (default: {DEFAULT_RENEW_DEADLINE:g})",
    )  # fmt: skip
    member.add_argument(
        "--trace", type=Path,
        help="append trace events here as JSON lines (every storage operation included)",
    )  # fmt: skip
    member.add_argument("--table", help=f"table (default: {TABLE_NAME_ELECTION})")
    member.add_argument("--seed", type=int, help="seed of the retry jitter")

    simulate = commands.add_parser(
        "simulate",
        help="run a scenario in the deterministic simulator and print its verdict",
        description=(
            "Run a catalogue scenario (see `leadersim scenarios`; NAME runs the entry's "
            "default variant, NAME[VARIANT] a named one) or a scenario file (.yaml, .yml, "
            ".toml or .json, in any case) in the simulator and print the one-line verdict. "
            "Output paths are checked before the run. A progress bar of simulated time "
            "shows on an interactive terminal."
        ),
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _scenario_arguments(simulate)
    _scale_argument(simulate)
    simulate.add_argument("--seed", type=int, default=0, help="the seed (default: 0)")
    simulate.add_argument(
        "--trace", type=Path, metavar="FILE.jsonl", help="write the trace here as JSON lines"
    )
    simulate.add_argument(
        "--plot",
        type=Path,
        metavar="FILE",
        help="draw the timeline into this .png, .svg or .pdf file",
    )
    simulate.add_argument(
        "--csv",
        type=Path,
        metavar="DIR",
        help=f"write the run's tables into this directory, one NAME.csv each "
        f"({', '.join(CSV_TABLES)}); it is created if missing",
    )

    sweep = commands.add_parser(
        "sweep",
        help="run a scenario over a grid of values and seeds; table, CSV and heatmap",
        description=(
            "Run a scenario for every combination of the --grid values and every seed "
            "(in parallel), print one line per combination (unsafe runs, split brain, "
            "no-leader time), and optionally save every run as a CSV row and a heatmap "
            "over the two --grid keys. With the keys config.lease_duration and "
            "config.renew_deadline, the heatmap also shows the theory's safe boundary. "
            "Invalid combinations (e.g. a deadline above lease - interval) are reported, "
            "not run."
        ),
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _scenario_arguments(sweep)
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        required=True,
        metavar="KEY=V1,V2,...",
        help="sweep a scenario key over these values, e.g. --grid config.lease_duration=10,15 "
        "(repeat for more keys; the grid is their product)",
    )
    sweep.add_argument(
        "--seeds",
        type=_count(1, "give at least 1 seed"),
        default=3,
        metavar="N",
        help="seeds 0..N-1 per combination (default: 3)",
    )
    sweep.add_argument(
        "--workers",
        type=_count(1, "give at least 1 worker"),
        metavar="N",
        help="worker processes (default: one per CPU; 1 runs in this process)",
    )
    sweep.add_argument(
        "--csv", type=Path, metavar="FILE.csv", help="write one row per run into this CSV file"
    )
    sweep.add_argument(
        "--plot",
        type=Path,
        metavar="FILE",
        help="draw a heatmap over the two --grid keys into this .png, .svg or .pdf file",
    )
    sweep.add_argument(
        "--value",
        default="overlap_s",
        metavar="COLUMN",
        help="what the heatmap shows, averaged over the seeds (default: overlap_s, the "
        "split brain in seconds; also safe, no_leader_s, failover_s, flaps ...)",
    )

    compare = commands.add_parser(
        "compare",
        help="run a scenario for real and in the simulator; compare failover, gaps, overlap",
        description=(
            "Run a scenario --runs times in the real lab (one OS process per member on one "
            "SQLite file, or --url) and over as many seeds in the simulator, with the same "
            "config and schedule (--scale first, then --set), and print side by side the "
            "failover latency, seconds without a leader, acting overlap and stale writes, "
            "each as median [min-max]. The simulator's storage latency is first fitted from "
            "the lab's traced storage operations (--no-fit keeps the scenario's). Real "
            "runs take the scenario's duration each: scale a catalogue entry down."
        ),
    )
    _scenario_arguments(compare)
    _scale_argument(compare)
    compare.add_argument(
        "--runs",
        type=_count(1, "give at least 1 run"),
        default=5,
        metavar="N",
        help="lab runs and simulated seeds (default: 5)",
    )
    compare.add_argument("--seed", type=int, default=0, help="the first seed (default: 0)")
    compare.add_argument("--url", help="run the lab on this server database URL")
    compare.add_argument(
        "--no-fit",
        action="store_true",
        help="simulate with the scenario's own storage latency, not one fitted from the lab",
    )
    compare.add_argument(
        "--json", action="store_true", help='print one JSON object: {"lab": {...}, "sim": {...}}'
    )

    lab = commands.add_parser(
        "lab",
        help="run a scenario for real: members as OS processes, faults as real actions",
        description=(
            "Run a catalogue scenario or a scenario file with real members (OS processes "
            "on one SQLite file, or a database URL) and its faults as real actions: crash "
            "SIGKILL, pause SIGSTOP/SIGCONT, cancel SIGTERM, restart a new process, storage "
            "faults in each member's fault wrapper. Kinds that cannot exist for real (clock "
            "drift or steps) are refused. Use --scale to run a minutes-long entry in "
            "seconds; print the verdict like `simulate`."
        ),
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _scenario_arguments(lab)
    _scale_argument(lab)
    lab.add_argument(
        "--members",
        type=_count(1, "give at least 1 member"),
        metavar="N",
        help="members n1..nN instead of the scenario's nodes (applied with the --set overrides)",
    )
    lab_where = lab.add_mutually_exclusive_group()
    lab_where.add_argument(
        "--db", type=Path, help="the SQLite file (default: in a temporary dir; emptied first)"
    )
    lab_where.add_argument(
        "--url", help="a database URL instead, e.g. postgresql+asyncpg://user@host:5432/db"
    )
    lab.add_argument("--seed", type=int, default=0, help="seeds start phases and jitter (0)")
    lab.add_argument(
        "--plot", type=Path, metavar="FILE", help="draw the timeline into a .png, .svg or .pdf"
    )
    lab.add_argument(
        "--csv", type=Path, metavar="DIR", help="write the run's tables here, as `simulate`"
    )
    lab.add_argument(
        "--trace-dir",
        type=Path,
        help="keep the members' traces, logs and the lab's lab.jsonl here (default: removed)",
    )

    scenarios = commands.add_parser(
        "scenarios",
        help="list the scenario catalogue, or print one entry as a scenario file",
        description=(
            "List the catalogue: each entry's id, name, timing assumptions, what happens "
            "and its variants (NAME alone runs the one marked default). With --show, print "
            "one entry as YAML in the scenario format: save it, edit it, and run it with "
            "`leadersim simulate FILE.yaml` (the same seed gives the same trace)."
        ),
    )
    scenarios.add_argument(
        "--show", metavar="NAME[VARIANT]", help="print this entry as a scenario file (YAML)"
    )

    explore = commands.add_parser(
        "explore",
        help="search fault schedules within a budget for a split brain; shrink the one found",
        description=(
            "Draw random fault schedules within --budget on top of the base scenario, run "
            "them (in parallel) until one breaks --prop, then shrink it to a minimal "
            "schedule and bisect the threshold of its remaining fault, beside the timing "
            "theory's prediction. Exit codes: 0 nothing found within the runs, 3 a "
            "schedule broke the property, 2 a usage error."
        ),
    )
    _scenario_arguments(explore)
    explore.add_argument(
        "--budget",
        required=True,
        metavar="YAML|FILE",
        help="what may be injected, as YAML/JSON text or a .yaml/.yml/.json file, e.g. "
        "'{pause: {max_duration: 30, max_count: 3}}' (see docs/explore.md)",
    )
    explore.add_argument(
        "--runs", type=_count(1, "give at least 1 run"), default=200, metavar="N",
        help="schedules to try at most (default: 200)",
    )  # fmt: skip
    explore.add_argument("--seed", type=int, default=0, help="seed of the search (default: 0)")
    explore.add_argument(
        "--prop", default="overlap", metavar="PROPERTY",
        help="what to break: overlap (default), harmful, 'no_leader>X' or 'failover>Y' (s)",
    )  # fmt: skip
    explore.add_argument(
        "--precision", type=float, default=0.01, metavar="SECONDS",
        help="of the threshold's bisection (default: 0.01)",
    )  # fmt: skip
    explore.add_argument(
        "--workers", type=_count(1, "give at least 1 worker"), metavar="N",
        help="worker processes (default: one per CPU; 1 runs in this process)",
    )  # fmt: skip
    explore.add_argument(
        "--out", type=Path, metavar="FILE.yaml", help="write the shrunken scenario here"
    )
    explore.add_argument(
        "--plot", type=Path, metavar="FILE", help="draw its timeline into this .png/.svg/.pdf"
    )
    explore.add_argument("--json", action="store_true", help="print the answer as JSON")
    return parser


def _scenario_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "scenario",
        metavar="SCENARIO",
        help="a catalogue name, NAME[VARIANT], or a .yaml/.yml/.toml/.json scenario file",
    )
    parser.add_argument("--variant", help="a catalogue variant (the same as SCENARIO[VARIANT])")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario key, e.g. --set config.lease_duration=15 (JSON values)",
    )


def _scale_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        metavar="F",
        help="multiply every time of the scenario by F before the --set overrides apply "
        "(fault times and durations, run length, lease, interval, deadline, latencies, "
        "stop times; writes per second divided), e.g. 0.1 (default: 1)",
    )


def _count(minimum: int, reason: str) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``minimum`` (``reason`` says why otherwise)."""

    def whole_number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number >= {minimum}, got {text!r}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{reason}, got {value}")
        return value

    return whole_number


def _json_value(text: str) -> object:
    """A value given on the command line: JSON if it parses (15, true, [1, 2]), else text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _key_value(option: str, item: str) -> tuple[str, str]:
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"{option} needs KEY=VALUE, got {item!r}")
    return key.strip(), text


def _overrides(items: Sequence[str]) -> dict[str, object]:
    overrides: dict[str, object] = {}
    for item in items:
        key, text = _key_value("--set", item)
        overrides[key] = _json_value(text)
    return overrides


def _resolve(args: argparse.Namespace) -> Scenario:
    """The scenario of SCENARIO, --variant and --set."""
    from leadersim.experiment import prepare_scenario

    overrides = _overrides(args.set)
    if getattr(args, "members", None) is not None:
        overrides = {"nodes": args.members, **overrides}
    return prepare_scenario(
        args.scenario,
        variant=args.variant,
        scale=getattr(args, "scale", 1.0),
        overrides=overrides,
    )


# ---------------------------------------------------------------------- output paths


def _output_file(option: str, path: Path | None, suffixes: Sequence[str], what: str) -> None:
    """Check, before anything runs, that ``path`` can be written as ``what``."""
    if path is None:
        return
    if path.suffix.lower() not in suffixes:
        allowed = ", ".join(suffixes)
        raise UsageError(f"{option} {path}: {what}; give a file ending in {allowed}")
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a directory; give a file ending in {path.suffix}")
    _writable_parent(option, path)
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{option} {path}: the file exists and cannot be overwritten")


def _writable_parent(option: str, path: Path) -> None:
    parent = path.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise UsageError(f"{option} {path}: directory {parent} {what}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: cannot write in directory {parent}")


def _output_dir(option: str, path: Path | None) -> None:
    """Check, before anything runs, that ``path`` is (or can be made) a writable directory."""
    if path is None:
        return
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise UsageError(f"{option} {path}: cannot write in this directory")
        return
    if path.exists() or path.suffix.lower() in TABLE_SUFFIXES:
        raise UsageError(
            f"{option} {path}: not a directory; {option} takes a directory and writes one "
            "CSV file per table into it"
        )
    _writable_parent(option, path)


def _new_figure(figsize: tuple[float, float]) -> Figure:
    """A figure on the Agg canvas: saved to a file, never shown (no global backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _cell(value: object) -> object:
    # Details and node lists as JSON, which any CSV reader can take apart again.
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def _write_tables(result: Result, directory: Path) -> list[Path]:
    directory.mkdir(exist_ok=True)
    written = []
    for name in CSV_TABLES:
        view = getattr(result, name)
        frame = view if name == "trace" else view()
        for column in frame.columns:
            if frame[column].dtype == object:
                frame[column] = frame[column].map(_cell)
        path = directory / f"{name}.csv"
        frame.to_csv(path, index=False)
        written.append(path)
    return written


# ---------------------------------------------------------------------- simulate


def _simulate(args: argparse.Namespace) -> int:
    from leadersim.errors import SafetyWarning
    from leadersim.experiment import simulate

    _output_file("--trace", args.trace, TRACE_SUFFIXES, "the trace is written as JSON lines")
    _output_file("--plot", args.plot, PLOT_SUFFIXES, "unknown picture format")
    _output_dir("--csv", args.csv)
    scenario = _resolve(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SafetyWarning)
        result = simulate(scenario, seed=args.seed, progress=sys.stderr.isatty())
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    # The verdict first: it is not lost if writing a file fails after all.
    print(f"{result.name} seed={args.seed} ({result.end_time:g} s): {result.verdict.line()}")
    sys.stdout.flush()
    if args.trace is not None:
        args.trace.write_text(result.to_jsonl(), encoding="utf-8")
        print(f"trace: {args.trace}")
    if args.plot is not None:
        # Sized as plot_timeline sizes a figure of its own: a lane per node and storage.
        figure = _new_figure((12, 1.2 + 0.55 * (len(result.nodes) + 1)))
        result.plot_timeline(ax=figure.add_subplot())
        figure.savefig(args.plot)
        print(f"timeline: {args.plot}")
    if args.csv is not None:
        written = _write_tables(result, args.csv)
        print(f"tables: {len(written)} CSV files in {args.csv}")
    return EXIT_OK if result.verdict.safe else EXIT_UNSAFE


# ---------------------------------------------------------------------- compare


def _compare(args: argparse.Namespace) -> int:
    from leadersim.comparison import compare

    comparison = compare(
        args.scenario,
        variant=args.variant,
        runs=args.runs,
        seed=args.seed,
        scale=args.scale,
        fit_latency=not args.no_fit,
        url=args.url,
        progress=True,
        **_overrides(args.set),
    )
    if args.json:
        print(json.dumps(comparison.to_dict(), indent=2))
    else:
        print(comparison.table())
    return EXIT_OK


# ---------------------------------------------------------------------- lab


def _lab(args: argparse.Namespace) -> int:
    from leadersim.lab import Lab, check_real

    _output_file("--plot", args.plot, PLOT_SUFFIXES, "unknown picture format")
    _output_dir("--csv", args.csv)
    if args.db is not None and not args.db.parent.is_dir():
        raise UsageError(f"--db {args.db}: directory {args.db.parent} does not exist")
    if args.trace_dir is not None and args.trace_dir.exists() and not args.trace_dir.is_dir():
        raise UsageError(f"--trace-dir {args.trace_dir}: not a directory")
    scenario = _resolve(args)
    check_real(scenario)
    if args.url is not None and (failed := _check_url(args.url, "lab")):
        return failed
    with tempfile.TemporaryDirectory(prefix="leadersim-lab-") as scratch:
        db_path = args.db if args.db is not None else Path(scratch) / "election.db"
        trace_dir = args.trace_dir if args.trace_dir is not None else Path(scratch) / "traces"
        members = ", ".join(scenario.nodes)
        print(
            f"leadersim lab: {scenario.name} for real, {scenario.duration:g} s, members {members}",
            file=sys.stderr,
        )
        with Lab.for_scenario(
            scenario, db_path, seed=args.seed, url=args.url, trace_dir=trace_dir
        ) as lab:
            result = lab.run_scenario(scenario)
        print(
            f"{result.name} seed={args.seed} lab ({result.end_time:g} s): {result.verdict.line()}"
        )
        sys.stdout.flush()
        if args.plot is not None:
            figure = _new_figure((12, 1.2 + 0.55 * (len(result.nodes) + 1)))
            result.plot_timeline(ax=figure.add_subplot())
            figure.savefig(args.plot)
            print(f"timeline: {args.plot}")
        if args.csv is not None:
            written = _write_tables(result, args.csv)
            print(f"tables: {len(written)} CSV files in {args.csv}")
    if args.trace_dir is not None:
        print(f"traces: {args.trace_dir}")
    return EXIT_OK if result.verdict.safe else EXIT_UNSAFE


# ---------------------------------------------------------------------- sweep


def _grid(items: Sequence[str]) -> dict[str, list[object]]:
    grid: dict[str, list[object]] = {}
    for item in items:
        key, text = _key_value("--grid", item)
        if key in grid:
            raise UsageError(f"--grid {key} is given twice; list all its values in one --grid")
        values = [_json_value(v.strip()) for v in text.split(",")]
        if not all(isinstance(v, str | int | float | bool) for v in values) or "" in values:
            raise UsageError(f"--grid {item!r}: give the values as V1,V2,... (numbers or words)")
        grid[key] = values
    return grid


def _summary_columns() -> list[str]:
    from leadersim.analysis.intervals import Summary

    return [f.name for f in dataclasses.fields(Summary)]


def _sweep(args: argparse.Namespace) -> int:
    import concurrent.futures

    from leadersim.errors import SafetyWarning
    from leadersim.sweep import process_pool, sweep

    grid = _grid(args.grid)
    _output_file("--csv", args.csv, TABLE_SUFFIXES, "the runs are written as CSV")
    _output_file("--plot", args.plot, PLOT_SUFFIXES, "unknown picture format")
    if args.plot is not None and len(grid) != 2:
        raise UsageError(f"--plot draws a heatmap over two --grid keys, got {len(grid)}")
    columns = _summary_columns()
    if args.value not in columns:
        raise UsageError(f"--value {args.value!r} is not a run's column; allowed: {columns}")
    scenario = _resolve(args)
    executor: concurrent.futures.Executor | str | None = "serial" if args.workers == 1 else None
    pool = None
    if args.workers is not None and args.workers > 1:
        pool = executor = process_pool(args.workers)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SafetyWarning)
            frame = sweep(
                scenario,
                grid,
                args.seeds,
                executor=executor,  # type: ignore[arg-type]
                progress=sys.stderr.isatty(),
                invalid="record",
            )
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    print(_sweep_table(frame, list(grid), args.seeds))
    sys.stdout.flush()
    if args.csv is not None:
        frame.to_csv(args.csv, index=False)
        print(f"runs: {args.csv}")
    if args.plot is not None:
        _save_heatmap(frame, scenario, list(grid), args.value, args.plot)
        print(f"heatmap: {args.plot}")
    return EXIT_OK


def _sweep_table(frame: pd.DataFrame, keys: list[str], seeds: int) -> str:
    """The sweep's table: a line per combination, an invalid one saying why.

    Columns: unsafe runs of the seeds, the worst split brain (s), the mean no-leader
    time (s) and the mean number of failovers.
    """
    metrics = ["unsafe", "split_brain_max_s", "no_leader_mean_s", "failovers_mean"]
    rows = []
    for values, runs in frame.groupby(keys, sort=False):
        row: dict[str, object] = dict(zip(keys, values, strict=True))
        error = runs["error"].dropna()
        if not error.empty:
            row["note"] = "invalid: " + str(error.iloc[0])
        else:
            row["unsafe"] = f"{int((~runs['safe'].astype(bool)).sum())}/{seeds}"
            row["split_brain_max_s"] = f"{runs['overlap_s'].max():.3f}"
            row["no_leader_mean_s"] = f"{runs['no_leader_s'].mean():.2f}"
            row["failovers_mean"] = f"{runs['failovers'].mean():.1f}"
        rows.append(row)
    import pandas as pd

    table = pd.DataFrame(rows, columns=[*keys, *metrics, "note"]).fillna("")
    lines = table.drop(columns="note").to_string(index=False).splitlines()
    # The reason of an invalid combination goes after its line, left-aligned.
    notes = ["", *table["note"]]
    return "\n".join(f"{line}  {note}".rstrip() for line, note in zip(lines, notes, strict=True))


def _save_heatmap(
    frame: pd.DataFrame, scenario: Scenario, keys: list[str], value: str, path: Path
) -> None:
    from leadersim.analysis import plots

    valid = frame[frame["error"].isna()]
    x, y = keys
    figure = _new_figure((7, 5.5))
    ax = figure.add_subplot()
    if valid.empty:
        raise UsageError("--plot: every combination is invalid; nothing to draw")
    boundary, label = _theory_boundary(scenario, x, y)
    plots.plot_sweep_heatmap(valid, x, y, value, boundary, ax=ax, predicted_label=label)
    ax.set_title(f"{scenario.name}: {value}, mean of the seeds")
    figure.savefig(path)


def _theory_boundary(scenario: Scenario, x: str, y: str) -> tuple[Callable[[Any], Any] | None, str]:
    """The theory's safe boundary on a lease x deadline grid (None for other grids).

    It counts the callback's stop latency C and no other delay: the worst case for a
    fault that only stops the leader's renewals.
    """
    from leadersim.analysis import theory
    from leadersim.config import DEFAULT_RENEW_INTERVAL
    from leadersim.sim.scenario import CallbackSpec

    interval = float(scenario.config.get("renew_interval", DEFAULT_RENEW_INTERVAL))
    stop = scenario.callback.stop_latency if isinstance(scenario.callback, CallbackSpec) else 0.0
    lease, deadline = "config.lease_duration", "config.renew_deadline"
    if (x, y) == (lease, deadline):
        return (
            lambda leases: theory.boundary_deadline(leases, interval, stop_latency=stop),
            "theory: safe below",
        )
    if (x, y) == (deadline, lease):
        return (
            lambda deadlines: theory.boundary_lease(deadlines, interval, stop_latency=stop),
            "theory: safe above",
        )
    return None, ""


# ---------------------------------------------------------------------- scenarios


# ---------------------------------------------------------------------- explore


def _explore(args: argparse.Namespace) -> int:
    """``leadersim explore``: exit 3 when a schedule broke the property, 0 when none did."""
    import concurrent.futures

    import yaml

    from leadersim.errors import SafetyWarning
    from leadersim.explore import explore
    from leadersim.sweep import process_pool

    _output_file("--out", args.out, (".yaml", ".yml"), "the scenario is written as YAML")
    _output_file("--plot", args.plot, PLOT_SUFFIXES, "unknown picture format")
    text = args.budget
    if Path(text).suffix.lower() in (".yaml", ".yml", ".json"):
        try:
            text = Path(text).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--budget {args.budget}: {exc.strerror or exc}") from None
    try:
        budget = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(
            f"--budget: cannot parse YAML/JSON: {' '.join(str(exc).split())}"
        ) from None
    if not isinstance(budget, dict):
        raise UsageError(f"--budget must be a mapping of fault kinds to bounds, got {budget!r}")
    scenario = _resolve(args)
    executor: concurrent.futures.Executor | str | None = "serial" if args.workers == 1 else None
    pool = None
    if args.workers is not None and args.workers > 1:
        pool = executor = process_pool(args.workers)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SafetyWarning)  # the answer states the slack
            answer = explore(
                scenario,
                budget,
                runs=args.runs,
                seed=args.seed,
                prop=args.prop,
                executor=executor,  # type: ignore[arg-type]
                precision=args.precision,
                progress=sys.stderr.isatty(),
            )
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    path = args.out if args.out is not None else Path("explored.yaml")
    if answer.found and args.out is not None:
        answer.write(args.out)
    if args.json:
        print(json.dumps(answer.to_dict(), default=str))
    else:
        print(answer.summary(path))
        if answer.found and args.out is not None:
            print(f"scenario: {args.out}")
        elif answer.found:
            # The replay line names a file this run did not write: say how to get it.
            print(f"(not written: add --out {path} to save the scenario the replay runs)")
    sys.stdout.flush()
    if answer.found and args.plot is not None and answer.result is not None:
        figure = _new_figure((12, 1.2 + 0.55 * (len(answer.result.nodes) + 1)))
        answer.plot_timeline(ax=figure.add_subplot())
        figure.savefig(args.plot)
        if not args.json:
            print(f"timeline: {args.plot}")
    return EXIT_UNSAFE if answer.found else EXIT_OK


def _scenarios(args: argparse.Namespace) -> int:
    import textwrap

    from leadersim.sim.scenarios import CATALOGUE

    if args.show is not None:
        return _show(args.show)
    for entry in CATALOGUE.values():
        print(f"{entry.id:>4}  {entry.name:34} {entry.assumptions}")
        print(textwrap.fill(entry.title, 96, initial_indent=" " * 6, subsequent_indent=" " * 6))
        if list(entry.variants) != ["base"]:
            listed = [v + (" (default)" if v == entry.default else "") for v in entry.variants]
            print(f"      variants: {', '.join(listed)}")
    print()
    print(
        "Run one: leadersim simulate NAME (its default variant) or NAME[VARIANT]; "
        "see one as a scenario file: leadersim scenarios --show NAME[VARIANT]"
    )
    return EXIT_OK


def _show(text: str) -> int:
    import textwrap

    from leadersim.experiment import dump_scenario, is_scenario_file, resolve_scenario
    from leadersim.sim.scenarios import CATALOGUE, split_name

    scenario = resolve_scenario(text)
    lines = []
    if not is_scenario_file(text):
        entry = CATALOGUE[split_name(text)[0]]
        lines += textwrap.wrap(f"{scenario.name} ({entry.id}): {entry.title}", 96)
        lines.append(f"timing assumptions: {entry.assumptions}")
        lines.append(f"source: {entry.source}")
        others = [v for v in entry.variants if f"[{v}]" not in scenario.name]
        if others:
            lines.append(f"other variants: {', '.join(others)}")
    lines.append("save as FILE.yaml and run: leadersim simulate FILE.yaml --seed 0")
    print("".join(f"# {line}\n" for line in lines) + dump_scenario(scenario), end="")
    return EXIT_OK


_MEMBER_FLAGS = ("id", "lease", "interval", "deadline", "trace", "table", "seed")


def _member_settings(args: argparse.Namespace) -> Any:
    """The member's :class:`~leadersim.lab.MemberSettings`: --settings, or the flags."""
    from leadersim.lab import MemberSettings

    if args.settings is not None:
        given = [f"--{flag}" for flag in _MEMBER_FLAGS if getattr(args, flag) is not None]
        if given:
            raise UsageError(f"--settings holds everything; do not add {', '.join(given)}")
        text = args.settings
        if text.startswith("@"):
            text = Path(text[1:]).read_text(encoding="utf-8")
        return MemberSettings.from_json(text)
    if args.id is None:
        raise UsageError("give --id (or --settings)")
    # The flags left out take MemberSettings' own defaults (their one home).
    flags = {
        "lease_duration": args.lease,
        "renew_interval": args.interval,
        "renew_deadline": args.deadline,
        "trace": None if args.trace is None else str(args.trace),
        "table": args.table,
    }
    return MemberSettings(
        id=args.id,
        db=None if args.db is None else str(args.db),
        url=args.url,
        seed=args.seed,
        # A trace then holds every storage operation too, as a lab member's does (what
        # fit_latency reads); without a trace there is nothing to trace them to.
        trace_storage=args.trace is not None,
        **{key: value for key, value in flags.items() if value is not None},
    )


def _stopped_before_start(signum: int, frame: object) -> None:
    # SIGTERM before the member's loop took the signal over: it has joined nothing
    # yet, so stopping now is a graceful stop (exit 0), not a death by signal.
    raise SystemExit(0)


def _member(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _stopped_before_start)
    from leadersim.lab import run_member

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    settings = _member_settings(args)
    try:
        run_member(settings)
    except ConfigError as exc:  # the user's mistake: a usage error
        print(f"leadersim member {settings.id}: {exc}", file=sys.stderr)
        return 2
    except LeadersimError as exc:
        print(f"leadersim member {settings.id}: {exc}", file=sys.stderr)
        return 1
    return 0


def _demo(args: argparse.Namespace) -> int:
    if args.db is not None and args.url is not None:
        print("leadersim demo: give --db or --url, not both", file=sys.stderr)
        return 2
    if args.db is not None and not args.db.parent.is_dir():
        print(f"leadersim demo: directory {args.db.parent} does not exist", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="leadersim-demo-") as scratch:
        db_path = args.db if args.db is not None else Path(scratch) / "election.db"
        trace_dir = args.trace_dir if args.trace_dir is not None else Path(scratch)
        try:
            if args.url is not None and (failed := _check_url(args.url)):
                return failed
            code = _run_demo(db_path, trace_dir, args.nodes, url=args.url)
        except KeyboardInterrupt:
            print("\nInterrupted; all members stopped.", file=sys.stderr)
            return 130
    if args.trace_dir is not None:
        print(f"Traces (JSON lines) and logs are in {args.trace_dir}.")
    return code


def _check_url(url: str, command: str = "demo") -> int:
    """Open the URL's storage once here, so a bad URL is one line, not a member's log."""
    import asyncio

    from leadersim.storage import open_storage

    async def probe() -> None:
        storage = await open_storage(url)
        await storage.close()

    try:
        asyncio.run(probe())
    except ConfigError as exc:
        print(f"leadersim {command}: {exc}", file=sys.stderr)
        return 2
    except LeadersimError as exc:
        print(f"leadersim {command}: {exc}", file=sys.stderr)
        return 1
    return 0


def _run_demo(db_path: Path, trace_dir: Path, nodes: int, *, url: str | None = None) -> int:
    from leadersim.lab import Lab, LabError

    lease = DEMO_LEASE_DURATION
    node_ids = [f"n{i}" for i in range(1, nodes + 1)]
    if url is None:
        print(f"leadersim demo: {nodes} election members as OS processes sharing one SQLite file")
        print(f"  database  {db_path}")
    else:
        from sqlalchemy import make_url

        shown = make_url(url).render_as_string(hide_password=True)
        print(f"leadersim demo: {nodes} election members as OS processes sharing one database")
        print(f"  database  {shown}")
    print(
        f"  config    lease {lease:g} s, renew interval {DEMO_RENEW_INTERVAL:g} s, "
        f"renew deadline {DEMO_RENEW_DEADLINE:g} s"
    )
    print()
    with Lab(
        db_path,
        node_ids,
        lease_duration=lease,
        renew_interval=DEMO_RENEW_INTERVAL,
        renew_deadline=DEMO_RENEW_DEADLINE,
        trace_dir=trace_dir,
        url=url,
    ) as lab:
        try:
            launched_at = time.monotonic()
            lab.start()
            started = ", ".join(f"{n} (pid {lab.pid(n)})" for n in node_ids)
            print(f"Started {started}.")

            def report(first: TraceEvent) -> None:  # as it happens, before the kill
                elected = first.true_time - launched_at
                print(f"{first.node} leads: elected {elected:.2f} s after launch.")
                print(
                    f"Killing {first.node} with SIGKILL: no release, so its lease has to run out."
                )

            failover = lab.kill_leader_and_watch(
                hold=DEMO_HOLD_DURATION,
                # A leader left in the file by an earlier, crashed run must first expire.
                startup_timeout=2 * lease + 15,
                before_kill=report,
            )
            leader = failover.leader
            others = [n for n in node_ids if n != leader]
            print(
                f"{failover.successor.node} leads: failover took "
                f"{failover.failover_s:.2f} s after the kill, "
                f"{failover.since_last_renewal_s:.2f} s after {leader}'s last renewal "
                f"(lease {lease:g} s)."
            )
        except LabError as exc:
            print(f"leadersim demo: {exc}", file=sys.stderr)
            return 1

        each = "each releases its lease and exits" if len(others) > 1 else "it releases its lease"
        print(f"Stopping {', '.join(others)} with SIGTERM: {each}.")
        codes = lab.stop_all()
    exits = ", ".join(f"{n} {codes[n]}" for n in others)
    print(f"  exit codes: {exits}")
    integrity = "ok"
    if url is None:
        integrity = lab.integrity_check()
        print(f"PRAGMA integrity_check: {integrity}")
    graceful = all(codes[n] == 0 for n in others)
    return 0 if integrity == "ok" and graceful else 1
