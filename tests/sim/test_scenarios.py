"""The named scenario catalogue gives its expected verdicts; scenarios as data and files.

Each Part A and Part B entry of ``leadersim.sim.scenarios`` is run, variant by variant,
and judged by ``check()`` against the verdict written from the timing rules.

- Fast tier (``python -m pytest``): every variant over its first seed, judged by the
  statements that hold seed by seed (``over="every"``); statements about a set of seeds
  (``some``, ``most``, ``median``) need the set and are left to the full tier. The
  50-member hour of A13 is slow even for one seed and runs in the full tier only.
- Full tier (``python -m pytest --full``, as in CI): every variant over all of its seeds,
  judged by every statement.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from leadersim import ConfigError, Scenario, TraceEvent, simulate
from leadersim.catalogue import check, run_entry
from leadersim.experiment import resolve_scenario
from leadersim.sim.scenarios import CATALOGUE, CatalogueEntry, Expect
from leadersim.sim.world import World

FULL = os.environ.get("LEADERSIM_FULL") == "1"
#: Variants too long for the fast tier even over one seed (50 members for a simulated hour).
SLOW = {("A13", "N=50")}

#: Part A of scenarios.md, by id and name.
PART_A = {
    "A1": "leader-crash",
    "A2": "leader-graceful-shutdown",
    "A3": "resign-with-cooldown",
    "A4": "newcomer-waits-a-lease",
    "A5": "leader-pause-shorter-than-slack",
    "A6": "leader-pause-longer-than-lease",
    "A7": "slow-callback-stop",
    "A8": "clock-drift-fast-follower",
    "A9": "wall-clock-step",
    "A10": "storage-latency-spike",
    "A11": "leader-partitioned-from-storage",
    "A12": "ambiguous-renew",
    "A13": "hot-row-many-members",
    "A14": "callback-crash-loop",
    "A15": "zero-slack-defaults",
    "A16": "release-reply-lost",
}

#: Part B of scenarios.md (incident reproductions; the optional B12 is not in the catalogue).
PART_B = {
    "B1": "github-2018-partition",
    "B2": "github-2012-stonith",
    "B3": "github-2012-flapping-failover",
    "B4": "hbase-juliet-pause",
    "B5": "elasticsearch-master-gc",
    "B6": "redis-sentinel-partition",
    "B7": "k8s-scheduler-dual-leader",
    "B8": "k8s-scheduler-clock-jump",
    "B9": "k8s-slow-etcd-lease-loss",
    "B10": "gitlab-2019-patroni-consul",
    "B11": "cloudflare-2020-byzantine-etcd",
}


@pytest.fixture(autouse=True)
def _quiet_safety_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def run_world(scenario: Scenario, seed: int) -> tuple[Sequence[TraceEvent], float]:
    run = World(scenario, seed).run()
    return run.events, run.end_time


def tier_seeds(entry: CatalogueEntry) -> tuple[int, ...]:
    return entry.seeds if FULL else entry.seeds[:1]


def judged_here(expect: Expect, variant: str) -> bool:
    """Whether this tier judges ``expect`` on ``variant`` (see the module docstring)."""
    return expect.variant in (None, variant) and (FULL or expect.over == "every")


def entry_variants() -> list[Any]:
    params = []
    for entry in CATALOGUE.values():  # the spec's entries, and any added since
        for variant in entry.variants:
            slow = (entry.id, variant) in SLOW
            marks = [pytest.mark.slow, pytest.mark.timeout(900)] if slow or FULL else []
            params.append(pytest.param(entry, variant, id=f"{entry.id}-{variant}", marks=marks))
    return params


# ---------------------------------------------------------------------------- catalogue


@pytest.mark.parametrize("part", [PART_A, PART_B], ids=["part-a", "part-b"])
def test_catalogue_holds_every_scenario_of_the_spec(part: dict[str, str]) -> None:
    assert {entry.id: name for name, entry in CATALOGUE.items() if entry.id in part} == part
    for name in part.values():
        entry = CATALOGUE[name]
        # Every expectation is about a variant that exists, and every variant is judged.
        named = {e.variant for e in entry.expect}
        assert named - {None} <= set(entry.variants), name
        assert None in named or set(entry.variants) <= named, name
        # Each variant is runnable by name through simulate()'s resolver.
        assert resolve_scenario(name) == entry.scenario()


@pytest.mark.parametrize(("entry", "variant"), entry_variants())
def test_catalogue_variant_gives_its_expected_verdict(entry: CatalogueEntry, variant: str) -> None:
    seeds = tier_seeds(entry)
    judged = dataclasses.replace(
        entry, expect=tuple(e for e in entry.expect if judged_here(e, variant))
    )
    metrics = run_entry(entry, run_world, seeds=seeds, variants=[variant])
    failures = check(judged, metrics)
    for line in failures:
        print(line)
    if failures:
        replay = (
            f'python -c "from leadersim.sim.scenarios import CATALOGUE; '
            f"from leadersim.experiment import simulate; "
            f'print(simulate(CATALOGUE[{entry.name!r}].scenario({variant!r}), seed=SEED))"'
        )
        print(f"seeds {list(seeds)}; replay one with: {replay}")
    assert failures == []


# ---------------------------------------------------------------------------- format errors


def test_unknown_scenario_key_is_an_error_naming_the_allowed_keys() -> None:
    with pytest.raises(ConfigError, match="durration") as raised:
        simulate({"nodes": 3, "durration": 60})
    message = str(raised.value)
    assert "allowed" in message
    for key in Scenario.KEYS:
        assert repr(key) in message


def test_unknown_override_is_an_error_naming_the_allowed_keys() -> None:
    with pytest.raises(ConfigError, match=r"'fault'.*allowed.*'faults'"):
        simulate("leader-crash", fault=[])


def test_unknown_fault_kind_is_an_error_naming_the_kinds() -> None:
    with pytest.raises(ConfigError, match="explode") as raised:
        simulate({"faults": [{"at": 10, "kind": "explode", "target": "n1"}]})
    for kind in ("crash", "restart", "pause", "cancel", "resign", "cut", "slow", "error"):
        assert repr(kind) in str(raised.value)
    assert "faults[0]" in str(raised.value)


def test_bad_cut_mode_is_an_error_naming_the_modes() -> None:
    fault = {"at": 10, "kind": "cut", "target": "leader", "duration": 5, "mode": "sideways"}
    with pytest.raises(ConfigError, match="sideways") as raised:
        simulate({"faults": [fault]})
    assert re.search(r"'request', 'reply', 'both', 'writes'", str(raised.value))


def test_unknown_key_of_a_fault_is_an_error_naming_that_kinds_keys() -> None:
    fault = {"at": 10, "kind": "pause", "target": "n1", "duration": 5, "lenght": 3}
    with pytest.raises(ConfigError, match="lenght") as raised:
        simulate({"faults": [fault]})
    assert re.search(r"allowed: \['at', 'duration', 'kind', 'target'\]", str(raised.value))


def test_missing_key_of_a_fault_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"'pause' fault needs \['duration'\]"):
        simulate({"faults": [{"at": 10, "kind": "pause", "target": "n1"}]})


def test_unknown_config_key_is_an_error_naming_the_config_fields() -> None:
    with pytest.raises(ConfigError, match="lease_duraton") as raised:
        simulate({"config": {"lease_duraton": 15}})
    assert "'lease_duration'" in str(raised.value)
    assert "'renew_deadline'" in str(raised.value)


def test_invalid_elector_config_is_an_error_naming_the_node() -> None:
    with pytest.raises(ConfigError, match=r"node 'n2'.*RenewDeadline must not be greater"):
        simulate({"nodes_config": {"n2": {"renew_deadline": 9}}})


def test_unknown_latency_distribution_is_an_error_naming_the_distributions() -> None:
    with pytest.raises(ConfigError, match=r"'pareto'.*'constant', 'uniform', 'exponential'"):
        simulate({"storage": {"latency": {"dist": "pareto"}}})


def test_unknown_scenario_name_lists_the_catalogue_names() -> None:
    with pytest.raises(ConfigError, match="leader-crahs") as raised:
        simulate("leader-crahs")
    for name in CATALOGUE:
        assert name in str(raised.value)


# ---------------------------------------------------------------------------- files

SCENARIO: dict[str, Any] = {
    "name": "my-pause",
    "nodes": 3,
    "config": {"lease_duration": 15, "renew_interval": 2, "renew_deadline": 8},
    "callback": {"stop_latency": 0.1, "writes_per_s": 1, "prepare_s": 1.0},
    "fencing": True,
    "storage": {"latency": {"dist": "lognormal", "median_s": 0.005}},
    "faults": [
        {"at": 30, "kind": "pause", "target": "leader", "duration": 20},
        {"at": 60, "kind": "cut", "target": "n2", "duration": 5, "mode": "reply"},
    ],
    "duration": 90,
}

YAML = """\
name: my-pause
nodes: 3
config: {lease_duration: 15, renew_interval: 2, renew_deadline: 8}
callback: {stop_latency: 0.1, writes_per_s: 1, prepare_s: 1.0}
fencing: true
storage: {latency: {dist: lognormal, median_s: 0.005}}
faults:
  - {at: 30, kind: pause, target: leader, duration: 20}
  - {at: 60, kind: cut, target: n2, duration: 5, mode: reply}
duration: 90
"""

TOML = """\
name = "my-pause"
nodes = 3
fencing = true
duration = 90

[config]
lease_duration = 15
renew_interval = 2
renew_deadline = 8

[callback]
stop_latency = 0.1
writes_per_s = 1
prepare_s = 1.0

[storage.latency]
dist = "lognormal"
median_s = 0.005

[[faults]]
at = 30
kind = "pause"
target = "leader"
duration = 20

[[faults]]
at = 60
kind = "cut"
target = "n2"
duration = 5
mode = "reply"
"""


def test_scenario_files_in_yaml_toml_and_json_run_exactly_like_the_mapping(
    tmp_path: Path,
) -> None:
    files = {
        "scenario.yaml": YAML,
        "scenario.toml": TOML,
        "scenario.json": json.dumps(SCENARIO),
    }
    expected = simulate(SCENARIO, seed=3)
    assert expected.name == "my-pause"
    assert expected.summary()["stale_rejected"] >= 1  # the pause did its harm; fencing held
    for filename, text in files.items():
        path = tmp_path / filename
        path.write_text(text, encoding="utf-8")
        for form in (path, str(path)):
            result = simulate(form, seed=3)
            assert result.name == "my-pause", filename
            assert result.to_jsonl() == expected.to_jsonl(), filename


def test_a_scenario_file_with_a_typo_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(YAML.replace("faults:", "fault:"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"typo\.yaml.*'fault'.*allowed"):
        simulate(path)


def test_an_unparsable_scenario_file_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("nodes = [", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.toml.*cannot parse"):
        simulate(path)
