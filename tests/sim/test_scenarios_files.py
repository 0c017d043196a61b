"""The catalogue as files: how entries are read, checked, extended and added by a user.

Each entry of the package is one YAML file in ``leadersim/sim/catalogue/``; a malformed
file is stopped when it is read, with one line naming the file and the key; a directory of
the user's own adds entries that ``simulate`` and the CLI run by name.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from leadersim import ConfigError, simulate
from leadersim.catalogue import check, run_entry, scenario_metrics
from leadersim.sim import scenarios
from leadersim.sim.scenarios import (
    BY_ID,
    CATALOGUE,
    CATALOGUE_DIR,
    METRICS,
    Expect,
    add_catalogue,
    load_catalogue,
    load_entry,
)
from leadersim.sim.world import World

#: A small entry of a user's own: 15/2/8 leaves 5 s of slack, so a 3-s stop is safe, and
#: fencing changes nothing about the overlap.
ENTRY = """\
id: U1
name: slow-stop
title: The leader loses storage and takes 3 s to stop its work.
assumptions: inside (C = 3 s < S = 5 s)
base:
  config: {lease_duration: 15, renew_interval: 2, renew_deadline: 8}
  callback: {stop_latency: 3}
  faults:
    - {at: 30, kind: cut, target: leader, duration: 30}
  duration: 90
variants:
  base: {}
  fencing: {fencing: true}
  short-lease:
    extends: fencing
    config.lease_duration: 10
seeds: [0, 1, 2]
expect:
  - {metric: overlap_s, op: ==, value: 0, variant: base, why: C fits in the slack}
  - {metric: overlap_s, op: ==, value: 0, variant: fencing}
  - {metric: takeover_s, op: between, value: [13, 18.5], variant: base}
"""


@pytest.fixture(autouse=True)
def _quiet_safety_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture
def restore_catalogue() -> Iterator[None]:
    """Undo :func:`add_catalogue` after the test (CATALOGUE is process-wide)."""
    saved, saved_ids = dict(CATALOGUE), dict(BY_ID)
    yield
    CATALOGUE.clear()
    CATALOGUE.update(saved)
    BY_ID.clear()
    BY_ID.update(saved_ids)


def write_entry(folder: Path, text: str = ENTRY, name: str = "slow-stop") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- the package


def test_every_package_entry_is_one_yaml_file_named_after_it() -> None:
    files = sorted(CATALOGUE_DIR.iterdir())
    # pyproject's package-data takes sim/catalogue/*.yaml: another suffix would not ship.
    assert [p.suffix for p in files] == [".yaml"] * len(files)
    assert sorted(p.stem for p in files) == sorted(CATALOGUE)
    assert all(entry.path == CATALOGUE_DIR / f"{name}.yaml" for name, entry in CATALOGUE.items())


def test_the_catalogue_is_in_id_order_and_by_id_matches() -> None:
    ids = [entry.id for entry in CATALOGUE.values()]
    assert ids == [f"A{i}" for i in range(1, 17)] + [f"B{i}" for i in range(1, 12)]
    assert {e.id: e.name for e in CATALOGUE.values()} == {i: e.name for i, e in BY_ID.items()}


def test_metrics_an_expectation_may_name_are_what_a_run_measures() -> None:
    result = simulate("leader-crash", seed=1)
    assert list(scenario_metrics(result.events, result.end_time)) == list(METRICS)


def test_regression_bounds_are_labelled_with_their_reasoning() -> None:
    bounds = [(e.id, x) for e in CATALOGUE.values() for x in e.expect if x.regression_bound]
    assert len(bounds) == 20
    assert all(x.why for _, x in bounds)
    # An expectation whose reasoning says it was corrected after a run is labelled.
    for entry in CATALOGUE.values():
        for expect in entry.expect:
            said = ("corrected from", "widened from", "regression bound")
            if any(s in expect.why.lower() for s in said):
                assert expect.regression_bound, (entry.id, expect.describe())


def test_a_variant_extends_another_and_its_own_keys_win(tmp_path: Path) -> None:
    entry = load_entry(write_entry(tmp_path))
    assert entry.variants["short-lease"] == {"fencing": True, "config.lease_duration": 10}
    scenario = entry.scenario("short-lease")
    assert scenario.fencing is True
    assert scenario.config["lease_duration"] == 10
    assert scenario.config["renew_deadline"] == 8  # a dotted key changes one value only
    assert scenario.name == "slow-stop[short-lease]"
    assert entry.scenario().description == entry.title


def test_package_entry_variants_use_extends() -> None:
    text = (CATALOGUE_DIR / "hbase-juliet-pause.yaml").read_text(encoding="utf-8")
    assert "extends: P=79-10/2/8" in text
    entry = CATALOGUE["hbase-juliet-pause"]
    fenced = entry.scenario("P=79-10/2/8-fencing")
    assert fenced.fencing
    assert fenced.faults == entry.scenario("P=79-10/2/8").faults


# ---------------------------------------------------------------------------- bad files

BAD = [
    pytest.param(("id: U1", "id: U1\ncolour: red"), ("'colour'", "allowed"), id="unknown-key"),
    pytest.param(("id: U1\n", ""), ("missing key(s) ['id']",), id="missing-id"),
    pytest.param(("id: U1", "id: u-1"), ("id:", "capital letters"), id="bad-id"),
    pytest.param(("name: slow-stop", "name: other"), ("name:", "file's name"), id="name-file"),
    pytest.param(
        ("op: ==, value: 0, variant: fencing", "op: eq, value: 0, variant: fencing"),
        ("expect[1].op:", "'eq'", "'between'"),
        id="bad-op",
    ),
    pytest.param(
        ("metric: takeover_s", "metric: take_over_s"),
        ("expect[2].metric:", "'take_over_s'", "'takeover_s'"),
        id="unknown-metric",
    ),
    pytest.param(
        ("variant: base, why", "over: all, variant: base, why"),
        ("expect[0].over:", "'all'", "'most'"),
        id="bad-quantifier",
    ),
    pytest.param(("value: [13, 18.5]", "value: 13"), ("expect[2].value:", "pair"), id="between-1"),
    pytest.param(("value: [13, 18.5]", "value: [18.5, 13]"), ("expect[2].value:",), id="between"),
    pytest.param(
        ("variant: fencing}", "variant: fencing, colour: red}"),
        ("expect[1]:", "'colour'", "'regression_bound'"),
        id="expect-key",
    ),
    pytest.param(
        ("variant: fencing}", "variant: fencing, regression_bound: true}"),
        ("expect[1].regression_bound:", "why"),
        id="bound-without-why",
    ),
    pytest.param(
        ("variant: fencing}", "variant: fenced}"),
        ("expect[1].variant:", "'fenced'", "'fencing'"),
        id="expect-variant",
    ),
    pytest.param(
        ("extends: fencing", "extends: fenced"),
        ("variants.short-lease.extends:", "'fenced'", "variants:"),
        id="extends-missing",
    ),
    pytest.param(
        ("fencing: {fencing: true}", "fencing: {extends: short-lease}"),
        ("extends: a cycle", "fencing -> short-lease -> fencing"),
        id="extends-cycle",
    ),
    pytest.param(
        ("fencing: {fencing: true}", "fencing: {fenceing: true}"),
        ("variants.fencing: unknown key 'fenceing'", "allowed"),
        id="variant-key",
    ),
    pytest.param(
        ("fencing: {fencing: true}", "fencing: {duration: 20}"),
        ("variants.fencing:", "at or after"),
        id="variant-invalid",
    ),
    pytest.param(
        ("variants:\n", "default: nope\nvariants:\n"),
        ("default: 'nope' is not a variant",),
        id="default",
    ),
    pytest.param(
        ("  fencing: {fencing", "  base: {}\n  fencing: {fencing"),
        ("cannot parse YAML", "given twice", "line 13"),
        id="variant-twice",
    ),
    pytest.param(("seeds: [0, 1, 2]", "seeds: 3"), ("seeds must be",), id="seeds"),
    pytest.param(
        ("  duration: 90", "  name: x\n  duration: 90"),
        ("base: unknown key(s) ['name']",),
        id="base-name",
    ),
]


@pytest.mark.parametrize(("change", "fragments"), BAD)
def test_a_malformed_entry_file_is_one_line_naming_the_file_and_key(
    tmp_path: Path, change: tuple[str, str], fragments: tuple[str, ...]
) -> None:
    old, new = change
    assert old in ENTRY
    path = write_entry(tmp_path, ENTRY.replace(old, new, 1))
    with pytest.raises(ConfigError) as raised:
        load_entry(path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: "), message
    for fragment in fragments:
        assert fragment in message, message
    # load_catalogue and add_catalogue stop at the same file with the same line.
    with pytest.raises(ConfigError, match="^" + str(path)):
        load_catalogue(tmp_path)


def test_the_good_entry_loads(tmp_path: Path) -> None:
    entry = load_entry(write_entry(tmp_path))
    assert (entry.id, entry.name, entry.seeds, entry.default) == (
        "U1",
        "slow-stop",
        (0, 1, 2),
        "base",
    )
    assert entry.expect[0] == Expect("overlap_s", "==", 0, "base", why="C fits in the slack")
    assert entry.expect[2].value == (13, 18.5)


def test_expect_refuses_what_it_cannot_judge() -> None:
    with pytest.raises(ConfigError, match="'between' takes a pair"):
        Expect("overlap_s", "between", 3)
    with pytest.raises(ConfigError, match="unknown metric 'overlap'"):
        Expect("overlap", "==", 0)


def test_a_name_or_id_twice_is_an_error_naming_both_files(tmp_path: Path) -> None:
    write_entry(tmp_path / "a")
    write_entry(tmp_path / "b", ENTRY.replace("name: slow-stop", "name: other"), name="other")
    with pytest.raises(ConfigError, match="id 'U1' is taken by") as raised:
        load_catalogue(tmp_path / "a", tmp_path / "b")
    assert str(tmp_path / "a" / "slow-stop.yaml") in str(raised.value)
    taken = ENTRY.replace("name: slow-stop", "name: leader-crash").replace("U1", "U2")
    write_entry(tmp_path / "c", taken, name="leader-crash")
    with pytest.raises(ConfigError, match=r"name 'leader-crash' is taken by .*leader-crash\.yaml"):
        add_catalogue(tmp_path / "c")
    with pytest.raises(ConfigError, match="no such catalogue directory"):
        load_catalogue(tmp_path / "missing")


# ---------------------------------------------------------------------------- a user's own


def test_a_users_entry_runs_by_name_and_is_judged(tmp_path: Path, restore_catalogue: None) -> None:
    write_entry(tmp_path)
    assert [e.name for e in add_catalogue(tmp_path)] == ["slow-stop"]
    assert list(CATALOGUE)[-1] == "slow-stop"
    assert BY_ID["U1"] is CATALOGUE["slow-stop"]
    by_name = simulate("slow-stop[fencing]", seed=2)
    assert (
        by_name.to_jsonl()
        == simulate(CATALOGUE["slow-stop"].scenario("fencing"), seed=2).to_jsonl()
    )
    assert by_name.verdict.overlap_s == 0

    def runner(scenario: scenarios.Scenario, seed: int) -> tuple[list[object], float]:
        run = World(scenario, seed).run()
        return run.events, run.end_time  # type: ignore[return-value]

    entry = CATALOGUE["slow-stop"]
    assert check(entry, run_entry(entry, runner)) == []
    # The judge is not blind: a bound the runs break is reported.
    wrong = load_entry(write_entry(tmp_path / "w", ENTRY.replace("[13, 18.5]", "[1, 2]")))
    failures = check(wrong, run_entry(wrong, runner, seeds=[0]))
    assert len(failures) == 1, failures
    assert failures[0].startswith("slow-stop[base]: expected takeover_s between (1, 2)")


def test_a_users_directory_in_the_environment_reaches_the_cli(tmp_path: Path) -> None:
    write_entry(tmp_path / "mine")
    env = {**os.environ, scenarios.CATALOGUE_ENV: str(tmp_path / "mine")}
    cli = Path(sys.executable).with_name("leadersim")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(cli), *args], capture_output=True, text=True, env=env, timeout=120, check=False
        )

    listed = run("scenarios")
    assert listed.returncode == 0, listed.stderr
    assert "U1  slow-stop" in listed.stdout
    ran = run("simulate", "slow-stop[fencing]", "--seed", "1")
    assert ran.returncode == 0, ran.stderr
    assert "slow-stop[fencing]" in ran.stdout
    write_entry(tmp_path / "mine", ENTRY.replace("op: ==", "op: eq", 1))
    broken = run("scenarios")
    assert broken.returncode == 2
    assert broken.stderr.count("\n") == 1
    assert "Traceback" not in broken.stderr
    assert "slow-stop.yaml: expect[0].op:" in broken.stderr
    assert scenarios.CATALOGUE_ENV in broken.stderr


def test_the_entry_format_is_documented_with_a_real_entry() -> None:
    text = textwrap.dedent((Path(__file__).parents[2] / "docs" / "catalogue.md").read_text())
    assert "## Adding a scenario" in text
    assert (CATALOGUE_DIR / "leader-crash.yaml").read_text(encoding="utf-8") in text
    for key in (*scenarios.ENTRY_KEYS, *scenarios.EXPECT_KEYS, "extends"):
        assert f"`{key}`" in text, key
