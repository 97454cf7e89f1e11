"""Free-threaded CPython (3.14t, 3.15t): the compiled engine keeps global mutable state (the
epoch counter of backward's visit marks, the deallocator's release queue) and is not safe
without the GIL, so its modules must declare that they need it (the Py_mod_gil slot, which
Cython fills with Py_MOD_GIL_USED unless the `freethreading_compatible` directive is on).
Then a free-threaded interpreter turns the GIL back on when it imports them, with a warning,
instead of running them unprotected.

Checked three ways: setup.py's directives and macros never turn the declaration off; Cython,
given those directives, emits "needs the GIL"; and, on a free-threaded interpreter, importing
the engine really re-enables the GIL."""
import ast
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import micrograd
from micrograd import engine as engine_module

ROOT = Path(__file__).resolve().parent.parent
SETUP = ROOT / "setup.py"
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
GIL_USED = "#define __Pyx_FREETHREADING_COMPATIBLE Py_MOD_GIL_USED"
GIL_NOT_USED = "#define __Pyx_FREETHREADING_COMPATIBLE Py_MOD_GIL_NOT_USED"


def setup_directives():
    """setup.py's DIRECTIVES dict, read without running setup.py (its values are constants or
    the DEBUG flag, taken as off: a release build)."""
    tree = ast.parse(SETUP.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "DIRECTIVES" for t in node.targets):
            names = {"DEBUG": False}
            return {ast.literal_eval(k): eval(compile(ast.Expression(v), "setup.py", "eval"), {}, names)
                    for k, v in zip(node.value.keys, node.value.values)}
    raise AssertionError("setup.py has no DIRECTIVES dict")


needs_setup = pytest.mark.skipif(not SETUP.is_file(), reason="setup.py not beside the tests (not a source tree or sdist)")


@needs_setup
def test_setup_never_declares_the_engine_free_threading_safe():
    assert not setup_directives().get("freethreading_compatible", False)
    assert "CYTHON_FREETHREADING_COMPATIBLE" not in SETUP.read_text()  # no -D that overrides the slot


@needs_setup
def test_cython_with_our_directives_declares_that_the_gil_is_needed(tmp_path):
    cython = pytest.importorskip("Cython.Build", reason="Cython not installed: cannot check what it emits")
    source = tmp_path / "probe.pyx"
    source.write_text("cdef unsigned long long _epoch = 0\n")
    cython.cythonize([str(source)], compiler_directives=setup_directives(), quiet=True)
    generated = (tmp_path / "probe.c").read_text()
    assert "{Py_mod_gil, __Pyx_FREETHREADING_COMPATIBLE}" in generated
    assert_gil_declared(generated)


def assert_gil_declared(c_source):
    """Cython writes the slot's value three times: NOT_USED under an explicit
    -DCYTHON_FREETHREADING_COMPATIBLE=1, and the directive's value both under =0 and as the
    default. With the directive on, the counts are the other way round (2 and 1)."""
    assert (c_source.count(GIL_NOT_USED), c_source.count(GIL_USED)) == (1, 2)


def test_the_built_engine_sources_declare_that_the_gil_is_needed():
    sources = sorted((ROOT / "src_cy" / "micrograd").glob("*.c"))
    if not sources:
        pytest.skip("no generated C sources here (an installed package): the directive tests cover this")
    for c_file in sources:
        assert_gil_declared(c_file.read_text())


@pytest.mark.skipif(not FREE_THREADED, reason="not a free-threaded Python: the GIL is always there")
@pytest.mark.cython
def test_importing_the_engine_turns_the_gil_back_on():
    if "cython" not in engine_module.ENGINES:
        pytest.skip(f"compiled engine not built: {engine_module.EXTENSION_ERROR}")
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}
    env["PYTHONPATH"] = str(Path(micrograd.__file__).resolve().parent.parent)
    code = ("import sys; assert not sys._is_gil_enabled(); import micrograd._engine, micrograd._tape; "
            "print(sys._is_gil_enabled())")
    done = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, env=env,
                          cwd=os.path.dirname(sys.executable))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
    assert "RuntimeWarning" in done.stderr and "GIL" in done.stderr
