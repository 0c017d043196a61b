"""The README's code must work as printed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_api_example_elects_the_only_member_and_releases(tmp_path: Path) -> None:
    blocks = python_blocks()
    assert blocks, "README.md has no python example"
    example = blocks[0]
    done = subprocess.run(
        [sys.executable, "-c", example],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "leader: node-1 | me: True" in done.stdout
    assert (tmp_path / "election.db").exists()


def test_readme_simulator_example_prints_what_the_readme_says(tmp_path: Path) -> None:
    blocks = [b for b in python_blocks() if "simulate(" in b]
    assert blocks, "README.md has no simulator example"
    done = subprocess.run(
        [sys.executable, "-c", blocks[0]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    printed = done.stdout.splitlines()
    promised = [line.removeprefix("# ") for line in blocks[0].splitlines() if line.startswith("# ")]
    assert printed[0].startswith(promised[0].removesuffix("..."))
    assert printed[1] == promised[1].split(":")[0]
