"""The command line says what is really happening: plain help with the program name the user
typed, `info` naming the imported folder and the engines, and a source tree that hides an
installed compiled copy (the `python -m micrograd` trap inside a clone) named as the cause."""
import os
import shutil
import subprocess
import sys
import warnings
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

import micrograd
from micrograd import _cli, _diagnose
from micrograd import engine as engine_module
from micrograd.__main__ import main as cli_main

PACKAGE_DIR = Path(micrograd.__file__).resolve().parent


def run(args, cwd, env=None, pythonpath=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MICROGRAD_") and k != "PYTHONPATH"}
    if pythonpath:
        full_env["PYTHONPATH"] = str(pythonpath)
    full_env.update(env or {})
    return subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120)


# -- program names and help ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv0, expected",
    [
        ("/venv/bin/micrograd", "micrograd demo"),  # the console script
        (r"C:\venv\Scripts\micrograd.exe", "micrograd demo"),
        ("/src/micrograd/__main__.py", "python -m micrograd demo"),  # python -m micrograd
        ("-c", "python -m micrograd demo"),
    ],
)
def test_program_name_follows_how_we_were_started(monkeypatch, argv0, expected):
    monkeypatch.setattr(sys, "argv", [argv0])
    assert _cli.program_name("demo") == expected


@pytest.mark.parametrize(
    "module_args, usage",
    [
        (["-m", "micrograd", "--help"], "usage: python -m micrograd <command>"),
        (["-m", "micrograd", "demo", "--help"], "usage: python -m micrograd demo "),
        (["-m", "micrograd", "viz", "--help"], "usage: python -m micrograd viz "),
        (["-m", "micrograd", "bench", "--help"], "usage: python -m micrograd bench "),
        (["-m", "micrograd.viz", "--help"], "usage: python -m micrograd.viz "),
    ],
)
def test_help_is_plain_text_with_the_program_name(tmp_path, module_args, usage):
    done = run([sys.executable, *module_args], tmp_path, pythonpath=PACKAGE_DIR.parent)
    assert done.returncode == 0, done.stderr
    assert usage in done.stdout
    assert "``" not in done.stdout and ":func:" not in done.stdout  # no RST markup


def test_unknown_command_is_an_error_with_usage(capsys):
    assert cli_main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'frobnicate'" in err and "commands:" in err


def test_info_names_the_imported_folder_and_the_engines(capsys):
    assert cli_main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"imported from: {PACKAGE_DIR}" in out
    assert f"python  micrograd.pure ({PACKAGE_DIR / 'pure.py'})" in out
    if "cython" in engine_module.ENGINES:
        assert "cython  micrograd._engine (" in out
    else:
        assert "cython  not loaded: " in out


# -- the diagnosis, on made-up folders ---------------------------------------------------------------
def make_package(root, *, extension=False, source_tree=False):
    package = root / "micrograd"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    if extension:
        (package / f"_engine{EXTENSION_SUFFIXES[0]}").write_bytes(b"")
    if source_tree:
        (root / "src_cy" / "micrograd").mkdir(parents=True)
        (root / "src_cy" / "micrograd" / "_engine.pyx").write_text("")
    return package.resolve()


def test_a_source_tree_hiding_an_installed_compiled_copy_is_named_with_the_fixes(tmp_path):
    clone = make_package(tmp_path / "clone", source_tree=True)
    site = make_package(tmp_path / "site-packages", extension=True)
    path = [str(tmp_path / "clone"), str(tmp_path / "site-packages")]
    assert _diagnose.shadowed_copies(clone, path) == [site]
    old_path = sys.path[:]
    sys.path[:] = path
    try:
        reason = _diagnose.missing_extension_reason("ImportError: no _engine", clone)
    finally:
        sys.path[:] = old_path
    assert f"imported from {clone}, which has no compiled engine (ImportError: no _engine)" in reason
    assert f"it hides the installed copy in {site}, which has one" in reason
    for fix in ("run from another folder", "`micrograd` command", "python setup.py build_ext --inplace", "pip install -e ."):
        assert fix in reason


def test_a_source_tree_alone_is_told_to_build_in_place(tmp_path, monkeypatch):
    clone = make_package(tmp_path / "clone", source_tree=True)
    make_package(tmp_path / "other", extension=False)  # another copy, but without the engine
    monkeypatch.setattr(sys, "path", [str(tmp_path / "clone"), str(tmp_path / "other")])
    reason = _diagnose.missing_extension_reason(None, clone)
    assert reason.startswith(f"the compiled engine is not built in the source tree {clone}: ")
    assert "python setup.py build_ext --inplace" in reason


def test_an_install_without_the_engine_is_told_to_reinstall_with_a_compiler(tmp_path, monkeypatch):
    installed = make_package(tmp_path / "site-packages")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "site-packages")])
    reason = _diagnose.missing_extension_reason("ImportError: x", installed)
    assert "has no compiled engine (ImportError: x)" in reason and "C compiler" in reason


def test_no_warning_without_a_shadowed_copy(monkeypatch):
    monkeypatch.setattr(_diagnose, "shadowed_copies", lambda *a: [])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _diagnose.warn_if_shadowed("ImportError: x")


# -- the real thing: a clone without its extension in front of a built copy -------------------------
needs_extension = pytest.mark.skipif(
    "cython" not in engine_module.ENGINES, reason="compiled engine not built: no copy to be shadowed"
)


@pytest.fixture
def clone(tmp_path):
    """A source tree without the compiled engine (the .py files and src_cy only), as a fresh
    clone is; the package under test (with its engine) goes on PYTHONPATH behind it, as an
    installed copy is on sys.path behind the current folder."""
    root = tmp_path / "clone"
    shutil.copytree(PACKAGE_DIR, root / "micrograd", ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    (root / "src_cy" / "micrograd").mkdir(parents=True)
    (root / "src_cy" / "micrograd" / "_engine.pyx").write_text("# stands for the Cython source\n")
    return root


@needs_extension
def test_python_m_inside_the_clone_warns_and_info_says_why(clone):
    done = run([sys.executable, "-m", "micrograd", "info"], clone, pythonpath=PACKAGE_DIR.parent)
    assert done.returncode == 0, done.stderr
    assert "ShadowedInstallWarning" in done.stderr and "the pure engine (about 100x slower) runs" in done.stderr
    assert f"imported from: {clone / 'micrograd'}" in done.stdout
    assert "active engine: python" in done.stdout
    assert f"it hides the installed copy in {PACKAGE_DIR}, which has one" in done.stdout
    assert "python setup.py build_ext --inplace" in done.stdout


@needs_extension
def test_the_demo_names_the_real_cause(clone):
    done = run([sys.executable, "-W", "ignore", "-m", "micrograd", "demo", "--steps", "1", "--samples", "4",
                "--hidden", "2", "--quiet"], clone, pythonpath=PACKAGE_DIR.parent)
    assert done.returncode == 0, done.stderr
    assert "running on the pure engine: micrograd was imported from " in done.stdout
    assert f"it hides the installed copy in {PACKAGE_DIR}" in done.stdout


@needs_extension
def test_asking_for_pure_python_in_the_clone_is_not_warned_about(clone):
    done = run([sys.executable, "-c", "import micrograd; print(micrograd.BACKEND)"], clone,
               env={"MICROGRAD_PUREPYTHON": "1"}, pythonpath=PACKAGE_DIR.parent)
    assert done.returncode == 0 and done.stdout.strip() == "python" and "Warning" not in done.stderr


@needs_extension
def test_a_console_script_run_inside_the_clone_imports_the_installed_copy(clone, tmp_path):
    # pip's console-script launcher is a file in bin/: sys.path[0] is bin/, not the current folder.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "micrograd"
    script.write_text("import sys\nfrom micrograd.__main__ import main\nsys.exit(main())\n")
    done = run([sys.executable, str(script), "info"], clone, pythonpath=PACKAGE_DIR.parent)
    assert done.returncode == 0, done.stderr
    assert f"imported from: {PACKAGE_DIR}" in done.stdout and "active engine: cython" in done.stdout
    assert "Warning" not in done.stderr
