"""Notebooks are reviewed as percent-format .py files paired with .ipynb: keep them paired.

(The notebooks themselves run top to bottom as tests through ``--nbmake``.)
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("*.py"))


def cell_sources(path: Path) -> list[tuple[str, str]]:
    notebook = jupytext.read(path)
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def test_there_are_notebooks() -> None:
    assert len(SOURCES) >= 3


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_matches_its_percent_format_twin(source: Path) -> None:
    paired = source.with_suffix(".ipynb")
    assert paired.exists(), f"run: jupytext --to ipynb {source}"
    assert cell_sources(paired) == cell_sources(source), (
        f"{paired.name} and {source.name} differ; run: jupytext --sync {source}"
    )
