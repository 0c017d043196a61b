"""The notebooks: they run, they draw, they carry their figures, they stay paired.

Notebooks are reviewed as percent-format .py files paired with .ipynb (jupytext). Each one
is executed here in a fresh Jupyter kernel (nbclient, what ``jupyter nbconvert --execute``
uses), and every cell that calls a plot function (``plot_...(``, outside a function
definition) must produce a PNG: a notebook that runs but draws nothing fails. The default
run clears ``MPLBACKEND`` (as in a user's Jupyter, where the inline backend draws); the
slow tier runs them again with ``MPLBACKEND=Agg`` (as CI sets it), where only an explicit
display shows a figure.

This replaces ``pytest --nbmake`` (which only checked that cells run). The fast tier runs
the first notebook (``FAST_TIER_NOTEBOOK``); the slow tier runs every notebook, under both
backends except the real-time ones (``REAL_TIME_NOTEBOOKS``), which run once, with Agg.
"""

from __future__ import annotations

import ast
import base64
import io
import re
import time
from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("*.py"))
PAIRED = [source.with_suffix(".ipynb") for source in SOURCES]
#: The name of a plot function (Result.plot_timeline, plots.plot_*, a notebook's plot_*).
PLOT_CALL = re.compile(r"\bplot_\w+\(")
#: What each notebook promises: it runs top to bottom in well under a minute.
#: A guard against a runaway notebook (a hang, a sweep grown by mistake), not a benchmark:
#: each runs in well under a minute on this project's 2-core machine (see the README), and
#: a loaded CI worker must not fail it.
MAX_RUNTIME_S = 180.0
#: Committed notebooks carry their figures; this keeps them reviewable (dpi is modest).
MAX_NOTEBOOK_BYTES = 600_000


def cell_sources(path: Path) -> list[tuple[str, str]]:
    notebook = jupytext.read(path)
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def calls_plot(source: str) -> bool:
    """Whether a cell calls a plot function when it runs.

    A call inside a function definition does not run with the cell (a helper that draws
    is checked where it is called); a cell IPython alone can parse (``%magic``) is judged
    by the plain pattern.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return PLOT_CALL.search(source) is not None

    def visit(node: ast.AST) -> bool:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return False
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if PLOT_CALL.match(f"{name}("):
                return True
        return any(visit(child) for child in ast.iter_child_nodes(node))

    return visit(tree)


def plotting_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in notebook.cells if c.cell_type == "code" and calls_plot(c.source)]


def pngs(cell: nbformat.NotebookNode) -> list[bytes]:
    return [
        base64.b64decode(output["data"]["image/png"])
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]


def assert_draws(notebook: nbformat.NotebookNode, name: str) -> None:
    """Every plotting cell shows one or more PNGs with something drawn on them."""
    import matplotlib.image

    cells = plotting_cells(notebook)
    assert cells, f"{name} has no cell that calls a plot function"
    for cell in cells:
        images = pngs(cell)
        first_line = cell.source.strip().splitlines()[0]
        assert images, f"{name}: the cell starting {first_line!r} shows no image/png"
        for png in images:
            pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
            height, width = pixels.shape[:2]
            assert width >= 400, f"{name}: a {width}x{height} figure is too small to read"
            assert height >= 150, f"{name}: a {width}x{height} figure is too small to read"
            assert pixels.std() > 0.05, f"{name}: the figure of {first_line!r} is blank"


def execute(path: Path) -> tuple[nbformat.NotebookNode, float]:
    import nbclient

    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    started = time.perf_counter()
    client.execute()
    return notebook, time.perf_counter() - started


def stderr_of(notebook: nbformat.NotebookNode) -> list[str]:
    return [
        output["text"]
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream" and output.get("name") == "stderr"
    ]


def test_there_are_notebooks() -> None:
    assert len(SOURCES) >= 3


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_matches_its_percent_format_twin(source: Path) -> None:
    paired = source.with_suffix(".ipynb")
    assert paired.exists(), f"run: jupytext --to ipynb {source}"
    assert cell_sources(paired) == cell_sources(source), (
        f"{paired.name} and {source.name} differ; run: jupytext --sync {source}"
    )


@pytest.mark.parametrize("path", PAIRED, ids=lambda p: p.stem)
def test_committed_notebook_carries_its_figures(path: Path) -> None:
    """A reader on GitHub sees every figure without running anything."""
    notebook = nbformat.read(path, as_version=4)
    assert_draws(notebook, f"the committed {path.name} (run: python docs/make_docs.py --notebooks)")
    size = path.stat().st_size
    assert size < MAX_NOTEBOOK_BYTES, f"{path.name} is {size} bytes"


#: Notebooks that spend most of their ~30 s on real processes and a server in real time
#: (lab runs, PostgreSQL): they run once, in the slow tier (CI's ``--full``), as CI sets
#: the backend.
REAL_TIME_NOTEBOOKS = frozenset({"04_fencing", "05_simulator_vs_reality"})
#: The one notebook the fast tier runs (the course's first, a real failover included): the
#: others take 10-20 s each and run in the slow tier (CI's ``--full``), which runs every
#: notebook under both backends, so that the README's test command stays under 2 minutes.
FAST_TIER_NOTEBOOK = "01_leases_from_scratch"


def notebook_params() -> list[object]:
    params: list[object] = []
    for path in PAIRED:
        if path.stem not in REAL_TIME_NOTEBOOKS:
            marks = () if path.stem == FAST_TIER_NOTEBOOK else (pytest.mark.slow,)
            params.append(pytest.param(path, None, id=f"{path.stem}-inline", marks=marks))
        params.append(pytest.param(path, "Agg", id=f"{path.stem}-Agg", marks=pytest.mark.slow))
    return params


@pytest.mark.parametrize(("path", "backend"), notebook_params())
def test_notebook_runs_and_draws(
    path: Path, backend: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The kernel inherits this process's environment: with MPLBACKEND unset, ipykernel
    # picks the inline backend, as in Jupyter; with Agg, the notebook must display itself.
    if backend is None:
        monkeypatch.delenv("MPLBACKEND", raising=False)
    else:
        monkeypatch.setenv("MPLBACKEND", backend)
    notebook, elapsed = execute(path)
    assert_draws(notebook, path.name)
    assert stderr_of(notebook) == [], f"{path.name} wrote to stderr (a warning?)"
    assert elapsed < MAX_RUNTIME_S, f"{path.name} took {elapsed:.1f} s"


def test_a_plot_call_inside_a_definition_is_not_a_plotting_cell() -> None:
    assert calls_plot("result.plot_timeline()")
    assert calls_plot("show(plots.plot_sweep_heatmap(df, 'a', 'b', 'c'))")
    assert calls_plot("table = plot_incident('b1', [])")
    assert not calls_plot("def plot_incident(name):\n    return result.plot_timeline()")
    assert not calls_plot("print('plot_timeline(')")


def test_the_first_notebook_shows_a_timeline_within_three_code_cells() -> None:
    """A new reader sees what a lease looks like before reading much code."""
    first = nbformat.read(PAIRED[0], as_version=4)
    code = [c for c in first.cells if c.cell_type == "code"][:3]
    assert any(calls_plot(c.source) and pngs(c) for c in code), PAIRED[0].name


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_teaches_with_asserts_and_leaves_the_backend_alone(source: Path) -> None:
    code = "\n".join(text for kind, text in cell_sources(source) if kind == "code")
    # CI picks the backend (MPLBACKEND=Agg); a notebook that sets one hides that choice.
    assert "matplotlib.use(" not in code, f"{source.name} calls matplotlib.use"
    assert len(re.findall(r"^\s*assert ", code, flags=re.M)) >= 5, (
        f"{source.name} asserts fewer than five of the numbers it teaches"
    )


def _requirements(extra: str, optional: dict[str, list[str]], seen: set[str]) -> list[str]:
    """The requirement strings of one extra, with ``leadersim[...]`` expanded."""
    found: list[str] = []
    for requirement in optional[extra]:
        if requirement.startswith("leadersim["):
            inner = requirement[len("leadersim[") : -1]
            if inner not in seen:
                seen.add(inner)
                found += _requirements(inner, optional, seen)
        else:
            found.append(requirement)
    return found


def test_environment_yml_matches_pyproject() -> None:
    """``conda env create -f environment.yml`` gives what ``pip install -e .[dev]`` gives."""
    import tomllib

    import yaml

    root = NOTEBOOKS.parent
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = list(project["dependencies"]) + _requirements(
        "dev", project["optional-dependencies"], {"dev"}
    )
    pattern = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[([a-z,]+)\])?(.*)$")
    expected: dict[str, str] = {}
    for requirement in wanted:
        match = pattern.match(requirement.replace(" ", ""))
        assert match, requirement
        name, extras, bound = match.group(1).lower(), match.group(2), match.group(3)
        expected[name] = bound
        # conda packages the extras as packages of their own
        for extra in (extras or "").split(","):
            if extra == "distributed":
                expected["distributed"] = bound
            elif extra == "asyncio":
                expected.setdefault("greenlet", "")
    environment = yaml.safe_load((root / "environment.yml").read_text(encoding="utf-8"))
    listed: dict[str, str] = {}
    for dependency in environment["dependencies"]:
        if isinstance(dependency, str):
            match = pattern.match(dependency.replace(" ", ""))
            assert match, dependency
            listed[match.group(1).lower()] = match.group(3)
    listed.pop("python", None)
    listed.pop("pip", None)
    assert listed == expected
    for notebook_need in ("jupyterlab", "ipywidgets", "ipykernel"):
        assert notebook_need in listed
