"""Engine selection through the environment variables, each case in a fresh interpreter."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import micrograd
from micrograd import engine as engine_module

PROBE = "import micrograd; print(micrograd.BACKEND, sorted(micrograd.ENGINES))"
# Makes `import micrograd._engine` fail, as on a machine where it was never built.
HIDE_EXTENSION = "import sys; sys.modules['micrograd._engine'] = None; "


# The package under test, wherever it was imported from (an install, or a source tree with the
# extension built in place). Subprocesses run outside the checkout, so `python -c` cannot pick up
# a source tree without the compiled module from the current directory instead.
PACKAGE_PARENT = str(Path(micrograd.__file__).resolve().parent.parent)


def run(code, **env):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MICROGRAD_")}
    full_env["PYTHONPATH"] = PACKAGE_PARENT
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, cwd=tempfile.gettempdir()
    )


needs_extension = pytest.mark.skipif(
    "cython" not in engine_module.ENGINES, reason="compiled engine not built: nothing to select"
)


@needs_extension
def test_compiled_engine_is_the_default():
    assert run(PROBE).stdout.split()[0] == "cython"


@needs_extension
@pytest.mark.parametrize("value, expected", [("1", "python"), ("yes", "python"), ("0", "cython"), ("", "cython")])
def test_purepython_variable(value, expected):
    result = run(PROBE, MICROGRAD_PUREPYTHON=value)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == expected


@needs_extension
def test_both_engines_reachable_by_name_when_pure_is_forced():
    out = run(PROBE + "; from micrograd.engine import ENGINES; print(ENGINES['cython'].__module__)",
              MICROGRAD_PUREPYTHON="1").stdout
    assert "python ['cython', 'python']" in out and "micrograd._engine" in out


def test_missing_extension_falls_back_to_pure():
    result = run(HIDE_EXTENSION + PROBE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "python"


def test_missing_extension_is_an_error_when_required():
    result = run(HIDE_EXTENSION + PROBE, MICROGRAD_REQUIRE_EXTENSION="1")
    assert result.returncode != 0
    assert "ImportError" in result.stderr and "MICROGRAD_REQUIRE_EXTENSION" in result.stderr


@needs_extension
def test_required_extension_loads():
    assert run(PROBE, MICROGRAD_REQUIRE_EXTENSION="1").stdout.split()[0] == "cython"


def test_contradictory_variables_are_an_error():
    result = run(PROBE, MICROGRAD_REQUIRE_EXTENSION="1", MICROGRAD_PUREPYTHON="1")
    assert result.returncode != 0 and "both set" in result.stderr


def test_extension_required_means_loaded_in_this_session():
    # In CI the extension is required: a build that silently lost it must fail here.
    if engine_module.flag("MICROGRAD_REQUIRE_EXTENSION"):
        assert engine_module.BACKEND == "cython"
    else:
        assert engine_module.BACKEND in engine_module.ENGINES
