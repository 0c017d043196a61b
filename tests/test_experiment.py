"""simulate() and resolve_scenario(): catalogue variants by name, files, the YAML round trip."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from leadersim import ConfigError, simulate
from leadersim.experiment import dump_scenario, resolve_scenario
from leadersim.sim.scenario import Scenario, load_scenario_file
from leadersim.sim.scenarios import CATALOGUE, CatalogueEntry, split_name

ENTRY_VARIANTS = [
    pytest.param(entry, variant, id=f"{entry.id}-{variant}")
    for entry in CATALOGUE.values()
    for variant in entry.variants
]


@pytest.fixture(autouse=True)
def _quiet_safety_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def short(scenario: Scenario) -> float:
    """A duration that keeps every fault of ``scenario`` and 15 s after the last one.

    At least 70 s: every catalogue fault starts at t >= 59, so the run shows it.
    """
    last = max((fault.at for fault in scenario.faults), default=0.0)
    return min(scenario.duration, max(70.0, last + 15.0))


# ---------------------------------------------------------------------------- by name


@pytest.mark.parametrize(("entry", "variant"), ENTRY_VARIANTS)
def test_every_variant_resolves_by_name_and_as_variant(entry: CatalogueEntry, variant: str) -> None:
    scenario = resolve_scenario(f"{entry.name}[{variant}]")
    assert scenario == entry.scenario(variant)
    assert scenario == resolve_scenario(entry.name, variant=variant)
    # The result's name says which variant ran (a variant called "base" is the bare name).
    assert scenario.name == (entry.name if variant == "base" else f"{entry.name}[{variant}]")
    assert split_name(scenario.name) == (entry.name, None if variant == "base" else variant)


@pytest.mark.parametrize("entry", CATALOGUE.values(), ids=lambda e: e.id)
def test_a_bare_name_runs_the_entrys_default_variant(entry: CatalogueEntry) -> None:
    assert entry.default in entry.variants
    assert resolve_scenario(entry.name) == entry.scenario(entry.default)


def test_the_github_2018_replay_reproduces_the_incident_by_default() -> None:
    # The entry's line: "C = 33: outside"; the old side keeps writing until the heal.
    result = simulate("github-2018-partition", seed=0)
    assert result.name == "github-2018-partition[C=33]"
    assert not result.verdict.safe
    assert 30.5 <= result.verdict.overlap_s <= 33.2
    assert result.verdict.stale_accepted >= 29
    # The harmless base stays runnable by name.
    harmless = simulate("github-2018-partition[C=0.1]", seed=0)
    assert harmless.verdict.stale_accepted <= 1
    assert harmless.verdict.overlap_s <= 0.2


PART_B = [e for e in CATALOGUE.values() if e.id.startswith("B")]


@pytest.mark.parametrize("entry", PART_B, ids=lambda e: e.id)
def test_every_incident_replay_shows_its_incident_by_default(entry: CatalogueEntry) -> None:
    verdict = simulate(entry.name, seed=0).verdict
    if entry.name == "k8s-scheduler-clock-jump":
        # The one replay that must show nothing: expiry runs on the monotonic clock.
        assert verdict.safe
        assert verdict.no_leader_s == 0
        assert verdict.flaps == 0
    else:
        # Either two leaders acted / a stale write got through, or the service stood still.
        harm = (not verdict.safe, verdict.no_leader_s >= 5, verdict.flaps >= 2)
        assert any(harm), (entry.name, verdict.line())


def test_an_unknown_variant_is_one_line_listing_the_entrys_variants() -> None:
    with pytest.raises(ConfigError) as raised:
        simulate("hbase-juliet-pause[P=7]")
    message = str(raised.value)
    assert "\n" not in message
    assert "'P=7'" in message
    for variant in CATALOGUE["hbase-juliet-pause"].variants:
        assert variant in message
    with pytest.raises(ConfigError, match="no variant 'nope'"):
        simulate("leader-crash", variant="nope")


def test_a_variant_given_twice_differently_or_without_a_catalogue_name_is_an_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match="names variant 'C=33'"):
        resolve_scenario("github-2018-partition[C=33]", variant="C=0.1")
    assert resolve_scenario("github-2018-partition[C=33]", variant="C=33").name.endswith("[C=33]")
    with pytest.raises(ConfigError, match="catalogue name only"):
        resolve_scenario({"nodes": 3}, variant="a")
    with pytest.raises(ConfigError, match="catalogue name only"):
        resolve_scenario(str(tmp_path / "s.yaml"), variant="a")
    for text in ("leader-crash[", "leader-crash[base", "leader-crash[]", "leader-crash[a]b]"):
        with pytest.raises(ConfigError, match=r"NAME\[VARIANT\]"):
            resolve_scenario(text)


def test_an_unknown_name_lists_the_catalogue_on_one_line() -> None:
    with pytest.raises(ConfigError) as raised:
        simulate("leader-crahs")
    message = str(raised.value)
    assert "\n" not in message
    assert ".yaml" in message  # it says a file would have been taken as one
    for name in CATALOGUE:
        assert name in message


# ---------------------------------------------------------------------------- files


@pytest.mark.parametrize("filename", ["S.YAML", "s.Yml", "S.TOML", "s.JSON"])
def test_a_missing_file_in_any_case_of_suffix_is_named_as_a_missing_file(
    tmp_path: Path, filename: str
) -> None:
    with pytest.raises(ConfigError, match=r": no such scenario file") as raised:
        simulate(str(tmp_path / filename))
    assert "catalogue" not in str(raised.value)


def test_a_directory_given_as_scenario_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(ConfigError, match="cannot read scenario file"):
        simulate(tmp_path / "dir.yaml")


def test_an_upper_case_yaml_file_runs_like_the_lower_case_one(tmp_path: Path) -> None:
    text = dump_scenario(resolve_scenario("leader-crash"))
    text = text.replace("duration: 300.0", "duration: 95")
    (tmp_path / "crash.YAML").write_text(text, encoding="utf-8")
    (tmp_path / "crash.yaml").write_text(text, encoding="utf-8")
    upper = simulate(str(tmp_path / "crash.YAML"), seed=1)
    assert upper.end_time == 95
    assert upper.to_jsonl() == simulate(str(tmp_path / "crash.yaml"), seed=1).to_jsonl()


# ---------------------------------------------------------------------------- round trip


@pytest.mark.parametrize(("entry", "variant"), ENTRY_VARIANTS)
def test_the_yaml_of_every_variant_reads_back_as_the_same_scenario(
    tmp_path: Path, entry: CatalogueEntry, variant: str
) -> None:
    scenario = entry.scenario(variant)
    path = tmp_path / "scenario.yaml"
    path.write_text(dump_scenario(scenario), encoding="utf-8")
    # Equal scenarios make equal runs (a World depends on nothing else but the seed).
    assert load_scenario_file(path) == scenario


ROUND_TRIP = [
    "leader-pause-longer-than-lease[fencing]",
    "github-2018-partition",
    "clock-drift-fast-follower[15/2/8-rho=5e-4]",
    "callback-crash-loop[n1-only]",
    "storage-latency-spike[30/2/20]",
]


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_the_yaml_run_as_a_file_gives_the_byte_identical_trace(tmp_path: Path, name: str) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(dump_scenario(resolve_scenario(name)), encoding="utf-8")
    named = simulate(name, seed=4)
    from_file = simulate(path, seed=4)
    assert from_file.name == named.name
    assert from_file.to_jsonl() == named.to_jsonl()
    assert len(named.events) > 100


def test_a_scenario_with_a_python_callback_cannot_be_dumped() -> None:
    async def lead() -> None:
        return None

    with pytest.raises(ConfigError, match="Python leader callback"):
        dump_scenario(Scenario(callback=lead))


# ---------------------------------------------------------------------------- progress


def test_progress_draws_a_bar_and_does_not_change_the_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    quiet = simulate("leader-crash", seed=2, duration=120)
    assert capsys.readouterr().err == ""
    shown = simulate("leader-crash", seed=2, duration=120, progress=True)
    assert "sim s" in capsys.readouterr().err  # the tqdm bar, in simulated seconds
    assert shown.to_jsonl() == quiet.to_jsonl()


# ---------------------------------------------------------------------------- full tier


def _run_short(name: str, seed: int, path: Path | None = None) -> Any:
    scenario = resolve_scenario(name)
    return simulate(path if path is not None else name, seed=seed, duration=short(scenario))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_variant_runs_by_name_and_round_trips_through_its_yaml(tmp_path: Path) -> None:
    failures = []
    for entry in CATALOGUE.values():
        for variant in entry.variants:
            name = f"{entry.name}[{variant}]"
            path = tmp_path / f"{entry.id}.yaml"
            path.write_text(dump_scenario(resolve_scenario(name)), encoding="utf-8")
            named = _run_short(name, seed=1)
            from_file = _run_short(name, seed=1, path=path)
            assert named.events, name
            if from_file.to_jsonl() != named.to_jsonl():
                failures.append(name)
    assert failures == []
