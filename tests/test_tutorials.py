"""Every tutorial notebook runs top to bottom without an error.

Each notebook is read and executed in memory with nbclient (the committed file, with its outputs, is
never rewritten), in ``tutorials/`` as working directory, with at most 1800 s per cell: the limit is there to catch a hang, not to judge
speed, so a slow or busy machine still passes.
"""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))


def test_tutorials_are_there():
    names = [path.stem for path in NOTEBOOKS]
    assert len(names) >= 10, f"expected the ten numbered tutorials in {TUTORIALS}, found {names}"
    assert [name[:2] for name in names] == [f"{i:02d}" for i in range(1, len(names) + 1)], names


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_tutorial_runs(path):
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(TUTORIALS)}}
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as error:
        pytest.fail(f"{path.name} failed:\n{error}", pytrace=False)
