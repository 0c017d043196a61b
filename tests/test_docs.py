"""The documentation the product carries: current, complete, runnable, self-contained.

- ``docs/catalogue.md`` and the README's timeline picture are made by
  ``docs/make_docs.py``; they must equal what it makes now.
- ``docs/scenarios.md`` names every key and fault kind the scenario format accepts, and
  its examples (Python, YAML, TOML) run.
- No file a user reads (the package, README, docs, notebooks, benchmarks) points to a file
  that is not in the repository.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import re
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from leadersim import simulate
from leadersim.sim import scenario as scenario_module
from leadersim.sim.faults import CUT_MODES, FAULT_KINDS
from leadersim.sim.latency import Latency
from leadersim.sim.scenario import CallbackSpec, Scenario
from leadersim.sim.scenarios import CATALOGUE

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
REGENERATE = "run: python docs/make_docs.py"


def load_make_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_docs", DOCS / "make_docs.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_docs = load_make_docs()


def code_blocks(path: Path, language: str) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


# ---------------------------------------------------------------------- generated files


def test_catalogue_doc_names_every_entry_and_variant() -> None:
    text = (DOCS / "catalogue.md").read_text(encoding="utf-8")
    missing = [
        f"{entry.name}[{variant}]" if variant else entry.name
        for entry in CATALOGUE.values()
        for variant in ("", *entry.variants)
        if f"`{variant or entry.name}`" not in text
    ]
    assert missing == [], f"docs/catalogue.md lacks {missing}; {REGENERATE}"


def test_catalogue_doc_is_current() -> None:
    committed = (DOCS / "catalogue.md").read_text(encoding="utf-8")
    assert committed == make_docs.render_catalogue(), f"docs/catalogue.md is stale; {REGENERATE}"


def test_readme_shows_the_timeline_picture_and_how_to_redraw_it() -> None:
    readme = README.read_text(encoding="utf-8")
    figure = make_docs.README_FIGURE.relative_to(ROOT).as_posix()
    assert f"]({figure})" in readme
    assert make_docs.README_FIGURE.exists(), REGENERATE
    assert "python docs/make_docs.py" in readme


def test_readme_picture_is_what_the_command_draws_now(tmp_path: Path) -> None:
    """Redraw the picture: a change in the simulator or the plot must show in the README."""
    import matplotlib
    import matplotlib.image
    from PIL import Image

    committed = make_docs.README_FIGURE
    fresh = make_docs.draw_readme_figure(tmp_path / "timeline.png")
    drawn_by = Image.open(committed).text.get("Software")
    if drawn_by == make_docs.software_tag():
        # Same matplotlib: the drawing is deterministic, so the bytes must match.
        stale = f"{committed.name} is stale; {REGENERATE}"
        assert fresh.read_bytes() == committed.read_bytes(), stale
        return
    # Another matplotlib version may anti-alias text differently: compare pixels, and
    # allow at most 1 % of them to differ visibly (a changed run moves bars and bands
    # across far more than that).
    old = matplotlib.image.imread(committed)
    new = matplotlib.image.imread(fresh)
    assert old.shape == new.shape, f"{committed.name} was drawn at another size; {REGENERATE}"
    differing = (abs(old - new).max(axis=-1) > 0.25).mean()
    assert differing < 0.01, f"{differing:.1%} of the pixels differ; {REGENERATE}"


# ---------------------------------------------------------------------- the scenario format


def test_scenario_format_doc_names_every_key_and_fault_kind() -> None:
    text = (DOCS / "scenarios.md").read_text(encoding="utf-8")
    keys = {
        "scenario": Scenario.KEYS,
        "config": scenario_module._CONFIG_KEYS,
        "clocks": scenario_module._CLOCK_KEYS,
        "callback": tuple(f.name for f in dataclasses.fields(CallbackSpec)),
        "storage": tuple(f.name for f in dataclasses.fields(scenario_module.StorageSpec)),
        "latency": tuple(f.name for f in dataclasses.fields(Latency)),
        "fault kinds": tuple(FAULT_KINDS),
        "fault keys": tuple(k for kind in FAULT_KINDS.values() for k in kind.params),
        "cut modes": CUT_MODES,
    }
    missing = {
        where: [name for name in names if f"`{name}`" not in text] for where, names in keys.items()
    }
    assert {k: v for k, v in missing.items() if v} == {}, "docs/scenarios.md must document these"
    for dist in ("constant", "uniform", "exponential", "lognormal"):
        assert f"`{dist}`" in text


def doc_scenarios() -> list[object]:
    params: list[object] = []
    for language, parse in (("yaml", yaml.safe_load), ("toml", tomllib.loads)):
        for i, block in enumerate(code_blocks(DOCS / "scenarios.md", language)):
            params.append(pytest.param(parse(block), id=f"{language}-{i}"))
    return params


@pytest.mark.parametrize("spec", doc_scenarios())
def test_scenario_examples_in_the_docs_run(spec: dict[str, object]) -> None:
    result = simulate(spec, seed=0)
    assert result.end_time == Scenario.from_mapping(spec).duration


def python_examples() -> list[object]:
    return [
        pytest.param(block, id=f"{path.stem}-{i}")
        for path in sorted(DOCS.glob("*.md"))
        for i, block in enumerate(code_blocks(path, "python"))
    ]


@pytest.mark.parametrize("block", python_examples())
def test_python_examples_in_the_docs_run(block: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(block, "<docs example>", "exec"), {})
    capsys.readouterr()


def test_docs_index_links_every_page() -> None:
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    pages = sorted(p.name for p in DOCS.glob("*.md") if p.name != "README.md")
    assert [p for p in pages if f"]({p})" not in index] == []
    assert "](docs/README.md)" in README.read_text(encoding="utf-8")


# ---------------------------------------------------------------------- self-contained


def user_facing_files() -> list[Path]:
    files = [README, *sorted(DOCS.glob("**/*.md")), *sorted(DOCS.glob("**/*.py"))]
    files += sorted((ROOT / "leadersim").glob("**/*.py"))
    files += sorted((ROOT / "notebooks").glob("*.py"))
    files += sorted((ROOT / "benchmarks").glob("**/*.py"))
    files += sorted((ROOT / "benchmarks").glob("**/*.md"))
    return files


#: A mention of a markdown file (``scenarios.md``, ``docs/theory.md``, ``../x/y.md``).
MD_MENTION = re.compile(r"[\w./-]*\b[\w-]+\.md\b")
#: Places that exist only outside the repository.
OUTSIDE = re.compile(r"shared/|reference-notes|/work/")
URL = re.compile(r"\w+://\S+")


def missing_references(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{shown}:{number}"
        if OUTSIDE.search(line):
            found.append(f"{where}: {line.strip()}")
            continue
        for mention in MD_MENTION.findall(URL.sub("", line)):
            if not ((path.parent / mention).exists() or (ROOT / mention).exists()):
                found.append(f"{where}: {mention!r} is not in the repository")
    return found


def test_nothing_points_outside_the_repository() -> None:
    """Docstrings and docs name files a user has: a path from the repository root
    (``docs/theory.md``) or, in markdown, relative to the page."""
    found = [line for path in user_facing_files() for line in missing_references(path)]
    assert found == [], "references to files not in the repository:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("line", "reported"),
    [
        ("Definitions (spec: scenarios.md §2).", True),
        ("What is checked (spec ``elector.md`` sections 1, 4 and 5).", True),
        ("The rules of ../shared/design.md.", True),
        ("See docs/theory.md and [the format](docs/scenarios.md).", False),
        ("Source: https://github.com/pingcap/tiflow/blob/master/README.md", False),
    ],
)
def test_the_reference_check_can_fail(line: str, reported: bool, tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(f'"""{line}"""\n', encoding="utf-8")
    assert bool(missing_references(probe)) is reported


def test_images_the_docs_show_exist() -> None:
    for path in [README, *DOCS.glob("*.md")]:
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", path.read_text(encoding="utf-8")):
            assert (path.parent / target).exists(), f"{path.name} shows missing {target}"


def test_png_metadata_names_the_drawing_version() -> None:
    from PIL import Image

    tag = Image.open(io.BytesIO(make_docs.README_FIGURE.read_bytes())).text.get("Software", "")
    assert tag.startswith("matplotlib "), tag
