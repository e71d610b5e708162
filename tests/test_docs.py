"""The documentation runs as written: the README usage block on the bundled example."""

import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _readme_python_blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    usage = text[text.index("## Usage") :]
    return re.findall(r"```python\n(.*?)```", usage, flags=re.DOTALL)


def test_readme_usage_block_runs_on_the_bundled_example(tmp_path, capsys):
    import matplotlib.pyplot as plt

    (block,) = _readme_python_blocks()[:1]
    assert "..." not in block.split("#")[0]  # no placeholders left to fill in
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the block writes masses.ecsv
    try:
        namespace: dict = {}
        exec(compile(block, "README.md", "exec"), namespace)
    finally:
        os.chdir(cwd)
        plt.close("all")
    out = capsys.readouterr().out
    assert "M200c (cnn2d)" in out and "M500c" in out
    table = namespace["table"]
    assert table["mass_500c"][0] < table["mass"][0]
    assert (tmp_path / "masses.ecsv").is_file()


@pytest.mark.parametrize("page", ["mocks.rst", "training.rst", "performance.rst"])
def test_code_blocks_are_doctests_or_say_why_not(page):
    """Every ``code-block:: python`` of these pages states why it is not run as a doctest."""
    text = (REPO / "docs" / page).read_text()
    blocks = [m.start() for m in re.finditer(r"\.\. code-block:: python", text)]
    for start in blocks:
        around = text[max(0, start - 400) : start + 400].lower()
        assert "not run as a doctest" in around, (
            f"docs/{page}: the python block at offset {start} neither runs nor says why"
        )
