"""One suite, two engines: the ``engine`` fixture runs a test once per engine ('python' and
'cython'); the ``nn`` fixture gives micrograd.nn building on that engine."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import micrograd
import micrograd.nn
from micrograd import engine as engine_module

ENGINE_PARAMS = ["python", pytest.param("cython", marks=pytest.mark.cython)]


def pytest_report_header(config):
    loaded = ", ".join(engine_module.ENGINES)
    why = f" (extension not loaded: {engine_module.EXTENSION_ERROR})" if engine_module.EXTENSION_ERROR else ""
    return f"micrograd engines loaded: {loaded}; active: {engine_module.BACKEND}{why}"


def engine_class(name):
    """The Value class of engine ``name``; skips when the compiled engine is not built, which
    is only allowed when the extension is not required (a pure install)."""
    if name not in engine_module.ENGINES:
        if engine_module.flag("MICROGRAD_REQUIRE_EXTENSION"):
            pytest.fail(f"compiled engine required but not loaded: {engine_module.EXTENSION_ERROR}")
        pytest.skip(f"compiled engine not built here: {engine_module.EXTENSION_ERROR}")
    return engine_module.ENGINES[name]


@pytest.fixture(params=ENGINE_PARAMS)
def engine(request):
    """The Value class of one engine."""
    return engine_class(request.param)


@pytest.fixture
def both_engines():
    """(pure Value, compiled Value), for tests that compare the two."""
    return engine_class("python"), engine_class("cython")


@pytest.fixture
def nn(engine, monkeypatch):
    """micrograd.nn, making its parameters with ``engine``'s Value."""
    monkeypatch.setattr(micrograd.nn, "Value", engine)
    return micrograd.nn


# The folder that holds the micrograd under test (the source tree or site-packages).
PACKAGE_PARENT = str(Path(micrograd.__file__).resolve().parent.parent)


@pytest.fixture
def run_python(tmp_path):
    """Run Python code in a fresh interpreter that imports the micrograd under test, from a
    folder outside the checkout (so a source tree without a built engine cannot shadow an
    installed one). Returns the CompletedProcess; a crash shows as a negative returncode."""

    def run(code, timeout=120):
        env = dict(os.environ, PYTHONPATH=PACKAGE_PARENT)
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=timeout)

    return run
