"""Every tutorial notebook runs top to bottom without an error, and the notebooks, their solution files
and the pages that link them agree on the numbering.

Each notebook is read and executed in memory with nbclient (the committed file, with its outputs, is
never rewritten), in ``tutorials/`` as working directory, with at most 1800 s per cell: the limit is
there to catch a hang, not to judge speed, so a slow or busy machine still passes.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
# Pages outside the notebooks that name notebooks or their solution files.
PAGES = [TUTORIALS / "README.md", ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOTEBOOK_LINK = re.compile(r"\b(\d\d_[a-z0-9_]+)\.ipynb")
SOLUTIONS_NAME = re.compile(r"solutions[./](\d\d_[a-z0-9_]+)")


def _cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _text(path):
    if path.suffix == ".ipynb":
        return "\n".join("".join(cell["source"]) for cell in _cells(path))
    return path.read_text(encoding="utf-8")


def test_tutorials_are_there():
    names = [path.stem for path in NOTEBOOKS]
    assert len(names) >= 12, f"expected the twelve numbered tutorials in {TUTORIALS}, found {names}"
    assert [name[:2] for name in names] == [f"{i:02d}" for i in range(1, len(names) + 1)], names


def test_each_notebook_is_titled_with_its_number():
    for path in NOTEBOOKS:
        first = _cells(path)[0]
        title = "".join(first["source"]).splitlines()[0]
        assert first["cell_type"] == "markdown" and title.startswith(f"# {path.stem[:2]} · "), (path.name, title)


def test_links_and_solution_files_resolve():
    # A renumbered notebook leaves stale names behind in links and in the solution module a notebook
    # loads; each must name a file that exists, and a notebook must load its own solutions.
    stems = {path.stem for path in NOTEBOOKS}
    for path in NOTEBOOKS + PAGES:
        text = _text(path)
        for name in NOTEBOOK_LINK.findall(text):
            assert name in stems, f"{path.relative_to(ROOT)} names {name}.ipynb, which does not exist"
        for name in SOLUTIONS_NAME.findall(text):
            assert (TUTORIALS / "solutions" / f"{name}.py").is_file(), f"{path.relative_to(ROOT)} names solutions {name}"
            if path.suffix == ".ipynb":
                assert name == path.stem, f"{path.name} loads the solutions of {name}"
    for solution in (TUTORIALS / "solutions").glob("[0-9][0-9]_*.py"):
        assert solution.stem in stems, f"solutions/{solution.name} belongs to no notebook"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_tutorial_runs(path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(TUTORIALS)}}
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as error:
        pytest.fail(f"{path.name} failed:\n{error}", pytrace=False)
