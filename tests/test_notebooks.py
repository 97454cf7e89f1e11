"""The notebooks in examples/: committed without outputs, and every cell runs.

Each notebook is executed with nbclient in a fresh kernel that imports the same micrograd as
this session, on the active engine (so CI's pure-engine run executes them on the pure engine).
A cell that raises fails the test. Without nbclient, nbformat or ipykernel (the `test` extra
installs them) the execution tests skip and say so.
"""
import json
import os
import time
from pathlib import Path

import pytest

import micrograd

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PACKAGE_PARENT = str(Path(micrograd.__file__).resolve().parent.parent)
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb")) if EXAMPLES.is_dir() else []
CELL_TIMEOUT = 300  # seconds; the slowest cell, the demo's training on the pure engine, takes ~15 s


def notebook_params():
    if not NOTEBOOKS:  # an installed package's test run has no examples/ beside it
        return [pytest.param(None, id="no-notebooks")]
    return [pytest.param(path, id=path.name) for path in NOTEBOOKS]


def test_the_lecture_and_demo_notebooks_exist():
    if not EXAMPLES.is_dir():
        pytest.skip("examples/ is not beside the tests (running against an installed package)")
    assert {"lecture.ipynb", "demo.ipynb"} <= {path.name for path in NOTEBOOKS}


@pytest.mark.parametrize("path", notebook_params())
def test_notebook_is_committed_without_outputs(path):
    if path is None:
        pytest.skip("examples/ is not beside the tests (running against an installed package)")
    notebook = json.loads(path.read_text())  # plain JSON: no dependency needed for this check
    code_cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code_cells, f"{path.name} has no code cells"
    for number, cell in enumerate(code_cells, 1):
        assert cell["outputs"] == [] and cell["execution_count"] is None, (
            f"{path.name}: code cell {number} was committed with outputs; clear them "
            "(jupyter nbconvert --clear-output --inplace examples/*.ipynb)"
        )


@pytest.mark.slow
@pytest.mark.parametrize("path", notebook_params())
def test_notebook_runs(path, tmp_path, monkeypatch):
    if path is None:
        pytest.skip("examples/ is not beside the tests (running against an installed package)")
    missing = [name for name in ("nbclient", "nbformat", "ipykernel") if not _importable(name)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (pip install '.[test]' installs them): notebooks not executed")
    import nbformat
    from nbclient import NotebookClient

    # The kernel is a child process: it inherits the environment (MICROGRAD_PUREPYTHON included)
    # and, through PYTHONPATH, imports the micrograd this session tests. Its working directory is
    # a temporary folder, so nothing is left behind. Matplotlib uses ipykernel's inline backend
    # (images as cell outputs, no window), as in Jupyter.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("MPLBACKEND", raising=False)
    notebook = nbformat.read(str(path), as_version=4)
    client = NotebookClient(
        notebook, kernel_name="python3", timeout=CELL_TIMEOUT, resources={"metadata": {"path": str(tmp_path)}}
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if a cell fails
    seconds = time.perf_counter() - start
    engine_line = _first_output(notebook)
    print(f"{path.name}: {seconds:.1f} s ({engine_line.strip()})")
    assert engine_line.startswith("engine: "), f"{path.name}'s first code cell should print the engine"
    assert engine_line.strip() == f"engine: {micrograd.BACKEND}", "the kernel runs another engine than this session"


def _importable(name):
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def _first_output(notebook):
    """The text the first code cell printed."""
    cell = next(cell for cell in notebook.cells if cell.cell_type == "code")
    return "".join(output.get("text", "") for output in cell.outputs if output.output_type == "stream")
