"""The named scenario catalogue (Part A: textbook cases; Part B: incident replays), as data.

Each entry is one YAML file in ``leadersim/sim/catalogue/`` (see "Adding a scenario" in
docs/catalogue.md): its metadata, a base scenario in the scenario format, named
**variants** that ``extends:`` the base or another variant with overrides (one of them
the entry's default, which its bare name runs), the seeds to judge it over, and its
**expected verdict**: a list of :class:`Expect` statements about the metrics of a run
(:data:`METRICS`), written from the timing rules before any run. An expectation corrected
after a run says so: ``regression_bound: true``, with its reasoning.

This module reads and validates the files into :class:`CatalogueEntry` objects and turns
a name into a :class:`~leadersim.sim.scenario.Scenario`. Judging runs against the
expectations (which needs the analysis) is :mod:`leadersim.catalogue`'s job.

More entries can come from directories of your own: ``LEADERSIM_CATALOGUE`` (a list of
directories, separated like ``PATH``) is read at import, and :func:`add_catalogue` adds
one at run time; either way :func:`~leadersim.simulate` and ``leadersim simulate`` then
run the new entries by name.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from leadersim.errors import ConfigError
from leadersim.sim.scenario import Scenario, apply_dotted, read_data_file

__all__ = [
    "BY_ID",
    "CATALOGUE",
    "CATALOGUE_DIR",
    "CATALOGUE_ENV",
    "DEFAULT_SEEDS",
    "ENTRY_KEYS",
    "EXPECT_KEYS",
    "METRICS",
    "OPS",
    "QUANTIFIERS",
    "CatalogueEntry",
    "Expect",
    "add_catalogue",
    "catalogue_scenario",
    "load_catalogue",
    "load_entry",
    "split_name",
]

#: The directory of the package's own entry files (package data: one ``NAME.yaml`` each).
CATALOGUE_DIR = Path(__file__).resolve().with_name("catalogue")
#: The environment variable naming more entry directories (``os.pathsep``-separated).
CATALOGUE_ENV = "LEADERSIM_CATALOGUE"
#: The seeds an entry is judged over unless its file names others.
DEFAULT_SEEDS = tuple(range(20))

#: The metrics an expectation may name: what :func:`leadersim.catalogue.scenario_metrics`
#: computes from a run (a test keeps the two equal), with their meaning.
METRICS: dict[str, str] = {
    "level": "the verdict level (not a number: never judged)",
    "safe": "1 if the run did no harm (SAFE or OVERLAP-FENCED)",
    "overlap_s": "seconds during which two or more leader callbacks ran at once",
    "belief_overlap_s": "the same, counted over is_leader()",
    "no_leader_s": "seconds with no callback running, after the first election",
    "failovers": "take-overs by another node whose cause was found (count)",
    "failover_s": "the first failover's time, from its cause to the new callback's start",
    "flaps": "callback terms started after the first one (count)",
    "leader_changes": "consecutive terms on different nodes (count)",
    "reelections": "consecutive terms on the same node (count)",
    "stale_accepted": "stale guarded writes that were accepted (count)",
    "stale_rejected": "stale guarded writes that fencing refused (count)",
    "fenced": "1 if every guarded write went through fencing",
    "first_leader_at": "when the first callback started (s into the run)",
    "failover_max_s": "the longest failover's time",
    "takeover_s": "from the first fault to the first callback start on another node",
    "first_start_after_fault_at": "when the first callback after the first fault started",
    "old_leader_back_s": "from the first fault until the node leading then leads again",
    "old_leader_stop_s": "from the first fault until its callback has stopped",
    "same_leader_at_end": "1 if the node leading at the first fault leads at the end",
    "last_term_s": "how long the last callback term has lasted at the end of the run",
    "renew_failed": "renew rounds that failed for their whole deadline (count, all nodes)",
    "conflict_share": "share of renew rounds whose first try lost the compare-and-swap",
}
#: The comparisons of an expectation (``between`` is inclusive, its value a pair).
OPS = ("<", "<=", "==", ">=", ">", "between")
#: Over which seeds a statement must hold: ``every``, ``some``, ``most`` (more than half),
#: or for the ``median`` of the values.
QUANTIFIERS = ("every", "some", "most", "median")

#: The keys of an entry file.
ENTRY_KEYS = (
    "id",
    "name",
    "title",
    "assumptions",
    "source",
    "seeds",
    "base",
    "variants",
    "default",
    "expect",
)
#: The keys of one expected statement.
EXPECT_KEYS = ("metric", "op", "value", "over", "variant", "why", "regression_bound")
_ID = re.compile(r"[A-Z]+[0-9]+")
#: A catalogue or variant name: no brackets (``NAME[VARIANT]``) and no spaces.
_NAME = re.compile(r"[^\s\[\]]+")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True, slots=True)
class Expect:
    """One expected statement about a metric over a set of seeds.

    Attributes:
        metric: A key of :data:`METRICS`.
        op: ``<``, ``<=``, ``==``, ``>=``, ``>`` or ``between`` (inclusive).
        value: The bound, in the metric's unit (a pair ``(low, high)`` for ``between``).
        variant: The variant it is about (``None``: every variant).
        over: ``every`` seed, ``some`` seed, ``most`` seeds (> half), or the ``median``.
        why: The reasoning, when an estimate needed one.
        regression_bound: The bound was set or corrected after seeing a run (``why``
            says from what and why); it guards against regressions rather than
            predicting from the timing rules alone.

    Raises:
        ConfigError: an unknown metric, op or quantifier, a value of the wrong shape, or
            a regression bound without its reasoning.
    """

    metric: str
    op: str
    value: float | tuple[float, float]
    variant: str | None = None
    over: str = "every"
    why: str = ""
    regression_bound: bool = False

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ConfigError(f"metric: unknown metric {self.metric!r}; allowed: {list(METRICS)}")
        if self.op not in OPS:
            raise ConfigError(f"op: unknown comparison {self.op!r}; allowed: {list(OPS)}")
        if self.over not in QUANTIFIERS:
            raise ConfigError(
                f"over: unknown quantifier {self.over!r}; allowed: {list(QUANTIFIERS)}"
            )
        value = self.value
        if self.op == "between":
            if not (
                isinstance(value, tuple)
                and len(value) == 2
                and all(_is_number(v) for v in value)
                and value[0] <= value[1]
            ):
                raise ConfigError(
                    f"value: 'between' takes a pair [low, high] of numbers, got {value!r}"
                )
        elif not _is_number(value):
            raise ConfigError(f"value: {self.op!r} takes one number, got {value!r}")
        if self.variant is not None and not isinstance(self.variant, str):
            raise ConfigError(f"variant must be a variant's name, got {self.variant!r}")
        if not isinstance(self.why, str):
            raise ConfigError(f"why must be text, got {self.why!r}")
        if not isinstance(self.regression_bound, bool):
            raise ConfigError(
                f"regression_bound must be true or false, got {self.regression_bound!r}"
            )
        if self.regression_bound and not self.why.strip():
            raise ConfigError("regression_bound: a regression bound needs its reasoning in 'why'")

    def holds_for(self, value: float | None) -> bool:
        """Whether one observed value satisfies the bound (``None`` never does)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        bound = self.value
        if isinstance(bound, tuple):
            return bound[0] <= value <= bound[1]
        return {
            "<": value < bound,
            "<=": value <= bound,
            "==": value == bound,
            ">=": value >= bound,
            ">": value > bound,
        }[self.op]

    def judge(self, values: Sequence[float | None]) -> bool:
        """Whether the statement holds over the values of all seeds."""
        if not values:
            return False
        if self.over == "median":
            present = [v for v in values if v is not None]
            return bool(present) and self.holds_for(statistics.median(present))
        passed = sum(self.holds_for(v) for v in values)
        if self.over == "every":
            return passed == len(values)
        if self.over == "some":
            return passed >= 1
        return passed * 2 > len(values)  # most

    def describe(self) -> str:
        """Readable form, e.g. ``overlap_s == 0 over every seed(s) [fencing]``."""
        where = f" [{self.variant}]" if self.variant else ""
        return f"{self.metric} {self.op} {self.value} over {self.over} seed(s){where}"


@dataclasses.dataclass(frozen=True)
class CatalogueEntry:
    """A named scenario with its variants and expected verdict.

    Attributes:
        id: The entry's id (``"A6"``, ``"B1"``): capital letters, then digits.
        name: Its catalogue name (``"github-2018-partition"``).
        title: One sentence: what happens.
        base: The scenario mapping the variants override.
        variants: Variant name to its overrides of ``base`` (``{}``: the base), with
            any ``extends:`` already resolved: a key replaces the base's value there, a
            dotted key (``config.lease_duration``) one value inside a mapping.
        assumptions: Whether it is inside or outside the timing assumptions, and when.
        expect: The expected verdict, written from the timing rules before any run.
        source: Where the case comes from (a post-mortem, an issue, the reference).
        seeds: The seeds it is judged over.
        default: The variant that the bare name runs: the one that shows what the entry
            is about (an incident replay reproduces the incident).
        path: The file it was read from (``None``: built in Python).

    Raises:
        ConfigError: the default, or an expectation's variant, is not a variant.
    """

    id: str
    name: str
    title: str
    base: Mapping[str, Any]
    variants: Mapping[str, Mapping[str, Any]]
    assumptions: str
    expect: tuple[Expect, ...]
    source: str
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    default: str = "base"
    path: Path | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.default not in self.variants:
            raise ConfigError(
                f"default: {self.default!r} is not a variant; variants: {list(self.variants)}"
            )
        for i, expect in enumerate(self.expect):
            if expect.variant is not None and expect.variant not in self.variants:
                raise ConfigError(
                    f"expect[{i}].variant: {expect.variant!r} is not a variant; "
                    f"variants: {list(self.variants)}"
                )

    def scenario(self, variant: str | None = None) -> Scenario:
        """The scenario of one variant (``None``: the entry's :attr:`default`).

        Its name is ``NAME[VARIANT]``, or the bare ``NAME`` for a variant called ``base``.

        Raises:
            ConfigError: the entry has no such variant (the message lists them).
        """
        chosen = self.default if variant is None else variant
        overrides = self.variants.get(chosen)
        if overrides is None:
            raise ConfigError(
                f"{self.name} has no variant {chosen!r}; its variants: "
                f"{', '.join(self.variants)} (default {self.default})"
            )
        spec = apply_dotted(self.base, overrides)
        spec["name"] = self.name if chosen == "base" else f"{self.name}[{chosen}]"
        spec.setdefault("description", self.title)
        return Scenario.from_mapping(spec)


def split_name(text: str) -> tuple[str, str | None]:
    """Split ``"NAME[VARIANT]"`` into ``("NAME", "VARIANT")``; a bare name has ``None``."""
    name, bracket, rest = text.partition("[")
    if not bracket:
        return text, None
    if not rest.endswith("]") or "[" in rest or "]" in rest[:-1] or len(rest) < 2:
        raise ConfigError(f"scenario {text!r}: write a variant as NAME[VARIANT]")
    return name, rest[:-1]


def catalogue_scenario(text: str, variant: str | None = None) -> Scenario:
    """The scenario of a catalogue name, ``"NAME"`` or ``"NAME[VARIANT]"``.

    Args:
        text: The name, optionally with a variant in brackets.
        variant: The variant, if not given in brackets (``None``: the entry's default).

    Raises:
        ConfigError: an unknown name or variant (the message lists what exists), or a
            variant given both in brackets and as ``variant``.
    """
    name, bracketed = split_name(text)
    entry = CATALOGUE.get(name)
    if entry is None:
        raise ConfigError(
            f"unknown scenario {name!r}: not a catalogue name (see `leadersim scenarios`) "
            f"nor a .yaml/.yml/.toml/.json file; catalogue names: {', '.join(CATALOGUE)}"
        )
    if bracketed is not None and variant is not None and bracketed != variant:
        raise ConfigError(f"scenario {text!r} names variant {bracketed!r}, but variant={variant!r}")
    return entry.scenario(bracketed if bracketed is not None else variant)


# ---------------------------------------------------------------------- the files


def load_entry(path: str | Path) -> CatalogueEntry:
    """Read and validate one entry file (YAML; also TOML or JSON).

    Every variant's scenario is built once, so an invalid one is found here, not when
    it runs.

    Raises:
        ConfigError: one line naming the file and the key: an unknown or missing key, a
            bad value, an ``extends:`` of a missing variant or a cycle of them, an
            unknown metric, op or quantifier, or an invalid scenario in a variant.
    """
    path = Path(path)
    data = read_data_file(path, "catalogue entry file", fast=True)
    try:
        entry = _entry(data, path)
        for variant in entry.variants:
            try:
                entry.scenario(variant)
            except ConfigError as exc:
                raise ConfigError(f"variants.{variant}: {exc}") from exc
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return entry


def _entry(data: Mapping[str, Any], path: Path) -> CatalogueEntry:
    unknown = [k for k in data if k not in ENTRY_KEYS]
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown}; allowed: {list(ENTRY_KEYS)}")
    missing = [k for k in ("id", "name", "title", "base") if k not in data]
    if missing:
        raise ConfigError(f"missing key(s) {missing}; an entry needs id, name, title and base")
    entry_id = _text("id", data["id"])
    if not _ID.fullmatch(entry_id):
        raise ConfigError(f"id: {entry_id!r} is not an id: capital letters, then digits (A6)")
    name = _text("name", data["name"])
    if not _NAME.fullmatch(name):
        raise ConfigError(f"name: {name!r} may not hold spaces or brackets")
    if path.stem != name:
        raise ConfigError(f"name: {name!r} must be the file's name ({path.stem!r})")
    base = data["base"]
    if not isinstance(base, Mapping):
        raise ConfigError(f"base must be a scenario mapping, got {base!r}")
    unknown = [k for k in base if k not in Scenario.KEYS or k == "name"]
    if unknown:
        allowed = sorted(set(Scenario.KEYS) - {"name"})
        raise ConfigError(
            f"base: unknown key(s) {unknown} (the entry names it); allowed: {allowed}"
        )
    variants = _variants(data.get("variants", {"base": {}}))
    seeds = data.get("seeds", list(DEFAULT_SEEDS))
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    ):
        raise ConfigError(f"seeds must be a non-empty list of integers >= 0, got {seeds!r}")
    raw_expect = data.get("expect", [])
    if not isinstance(raw_expect, list):
        raise ConfigError(f"expect must be a list of statements, got {raw_expect!r}")
    return CatalogueEntry(
        id=entry_id,
        name=name,
        title=_text("title", data["title"]),
        base=dict(base),
        variants=variants,
        assumptions=_text("assumptions", data.get("assumptions", "")),
        expect=tuple(_expect(f"expect[{i}]", e) for i, e in enumerate(raw_expect)),
        source=_text("source", data.get("source", "")),
        seeds=tuple(seeds),
        default=_text("default", data.get("default", "base")),
        path=path,
    )


def _text(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be text, got {value!r}")
    return value


def _variants(raw: Any) -> dict[str, dict[str, Any]]:
    """Each variant's overrides of the base, with its ``extends:`` chain applied."""
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"variants must be a mapping of names to overrides, got {raw!r}")
    for name, overrides in raw.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError(f"variants: {name!r} is not a name (no spaces or brackets)")
        if overrides is None:
            continue
        if not isinstance(overrides, Mapping):
            raise ConfigError(f"variants.{name} must be a mapping of overrides, got {overrides!r}")
        for key in overrides:
            if key == "extends":
                continue
            top = str(key).split(".")[0]
            if not isinstance(key, str) or top not in Scenario.KEYS or top == "name":
                allowed = sorted({*Scenario.KEYS, "extends"} - {"name"})
                raise ConfigError(
                    f"variants.{name}: unknown key {key!r}; allowed: {allowed} "
                    "(or a dotted key into one of them)"
                )
    resolved: dict[str, dict[str, Any]] = {}

    def resolve(name: str, chain: tuple[str, ...]) -> dict[str, Any]:
        if name in resolved:
            return resolved[name]
        if name in chain:
            cycle = " -> ".join((*chain[chain.index(name) :], name))
            raise ConfigError(f"variants.{chain[-1]}.extends: a cycle {cycle}")
        own = dict(raw[name] or {})
        parent = own.pop("extends", None)
        flat: dict[str, Any] = {}
        if parent is not None:
            if not isinstance(parent, str) or parent not in raw:
                raise ConfigError(
                    f"variants.{name}.extends: {parent!r} is not a variant; "
                    f"variants: {list(raw)} (leave extends out to extend the base)"
                )
            inherited = resolve(parent, (*chain, name))
            # A key the variant sets again replaces the inherited one; dropping the
            # earlier write is exact, since a later write to a key overwrites all of it.
            flat = {k: v for k, v in inherited.items() if k not in own}
        flat.update(own)
        resolved[name] = flat
        return flat

    return {name: resolve(name, ()) for name in raw}


def _expect(where: str, raw: Any) -> Expect:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping with {list(EXPECT_KEYS)}, got {raw!r}")
    unknown = [k for k in raw if k not in EXPECT_KEYS]
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {list(EXPECT_KEYS)}")
    missing = [k for k in ("metric", "op", "value") if k not in raw]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {missing}")
    value = raw["value"]
    try:
        return Expect(
            metric=raw["metric"],
            op=raw["op"],
            value=tuple(value) if isinstance(value, list) else value,
            variant=raw.get("variant"),
            over=raw.get("over", "every"),
            why=" ".join(str(raw.get("why", "")).split()),
            regression_bound=raw.get("regression_bound", False),
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}.{exc}") from exc


def _order(entry: CatalogueEntry) -> tuple[str, int]:
    letters = entry.id.rstrip("0123456789")
    return letters, int(entry.id[len(letters) :])


def load_catalogue(*directories: str | Path) -> dict[str, CatalogueEntry]:
    """The entries of every ``*.yaml``/``*.yml`` file in ``directories``, by name, in id order.

    Raises:
        ConfigError: a directory that does not exist, an invalid file (as
            :func:`load_entry`), or two entries with the same name or id.
    """
    entries: list[CatalogueEntry] = []
    for directory in directories:
        folder = Path(directory)
        if not folder.is_dir():
            raise ConfigError(f"{folder}: no such catalogue directory")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".yaml", ".yml"))
        entries += [load_entry(p) for p in files]
    return _index(entries, {})


def _index(
    entries: Iterable[CatalogueEntry], existing: Mapping[str, CatalogueEntry]
) -> dict[str, CatalogueEntry]:
    """``existing`` and ``entries`` by name, in id order; a name or id twice is an error."""
    by_name = dict(existing)
    ids = {e.id: e for e in existing.values()}
    for entry in entries:
        for key, seen in ((entry.name, by_name), (entry.id, ids)):
            if key in seen:
                raise ConfigError(
                    f"{entry.path}: {'name' if seen is by_name else 'id'} {key!r} is taken "
                    f"by {seen[key].path or 'a built-in entry'}"
                )
        by_name[entry.name] = ids[entry.id] = entry
    return {e.name: e for e in sorted(by_name.values(), key=_order)}


def add_catalogue(directory: str | Path) -> list[CatalogueEntry]:
    """Add the entries of a directory of your own to :data:`CATALOGUE` (and :data:`BY_ID`).

    Then :func:`~leadersim.simulate` runs them by name. From the shell, name the
    directory in ``LEADERSIM_CATALOGUE`` instead.

    Returns:
        The entries added, in id order.

    Raises:
        ConfigError: as :func:`load_catalogue`, or a name or id the catalogue already has.
    """
    added = load_catalogue(directory)
    merged = _index(added.values(), CATALOGUE)
    CATALOGUE.clear()
    CATALOGUE.update(merged)
    BY_ID.clear()
    BY_ID.update({e.id: e for e in merged.values()})
    return list(added.values())


def _initial() -> dict[str, CatalogueEntry]:
    extra = [d for d in os.environ.get(CATALOGUE_ENV, "").split(os.pathsep) if d.strip()]
    try:
        return load_catalogue(CATALOGUE_DIR, *extra)
    except ConfigError as exc:
        if extra:
            raise ConfigError(f"{exc} (catalogue directories: {CATALOGUE_ENV})") from exc
        raise


#: The catalogue by scenario name, in id order.
CATALOGUE: dict[str, CatalogueEntry] = _initial()
#: The same entries by id (``"A6"``).
BY_ID: dict[str, CatalogueEntry] = {entry.id: entry for entry in CATALOGUE.values()}
