"""Run the test suite against the *installed* micrograd, and prove that it did.

    python tools/run_installed_tests.py --expect-backend cython [pytest options...]

Used by tools/check_dist.sh and by cibuildwheel's test-command (pyproject.toml), from a working
directory outside the source tree. A test run that imports the source tree's ``micrograd/``
instead of the installed one (because the working directory is the project root, or because a
``tests/__init__.py`` makes pytest put the project root on sys.path) would pass without testing
the wheel at all; so after the run this script checks which micrograd the session imported:

- it must come from this interpreter's site-packages;
- ``micrograd.BACKEND`` must be the expected engine;
- the compiled engine must be present in the installed package for ``cython``, and absent
  (no ``.so``/``.pyd`` at all) for ``python``;
- the installed package must ship ``py.typed`` and the ``_engine.pyi`` stub, and its
  ``micrograd`` console script must run.

Exits with pytest's status, or 1 when a check fails.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
DISTRIBUTION = "micrograd-fast"
COMPILED_SUFFIXES = {".so", ".pyd"}


def site_packages() -> set[Path]:
    return {Path(sysconfig.get_paths()[key]).resolve() for key in ("purelib", "platlib")}


def compiled_modules(package_dir: Path) -> list[str]:
    return sorted(p.name for p in package_dir.iterdir() if p.suffix in COMPILED_SUFFIXES)


def run_console_script() -> subprocess.CompletedProcess:
    """`micrograd info`, through the launcher pip installed for the console script."""
    scripts = Path(sysconfig.get_paths()["scripts"])
    launcher = scripts / ("micrograd.exe" if sys.platform == "win32" else "micrograd")
    return subprocess.run([str(launcher), "info"], capture_output=True, text=True)


def check_installed(expect_backend: str) -> list[str]:
    """What is wrong with the micrograd this process imported; empty when all is well."""
    micrograd = sys.modules.get("micrograd")
    if micrograd is None:
        return ["the test session never imported micrograd"]
    package_dir = Path(micrograd.__file__).resolve().parent
    compiled = compiled_modules(package_dir)
    print(f"\nmicrograd.__file__ = {micrograd.__file__}")
    print(f"micrograd.BACKEND  = {micrograd.BACKEND}; compiled modules: {', '.join(compiled) or 'none'}")
    problems = []
    if not any(site in package_dir.parents for site in site_packages()):
        problems.append(f"micrograd was imported from {package_dir}, not from site-packages: "
                        "the tests did not test the installed package")
    if micrograd.BACKEND != expect_backend:
        problems.append(f"micrograd.BACKEND is {micrograd.BACKEND!r}, expected {expect_backend!r}")
    has_engine = any(name.startswith("_engine.") for name in compiled)
    if expect_backend == "cython" and not has_engine:
        problems.append("the installed package has no compiled _engine module")
    if expect_backend == "python" and compiled:
        problems.append(f"a pure install holds compiled modules: {compiled}")
    for name in ("py.typed", "_engine.pyi"):
        if not (package_dir / name).is_file():
            problems.append(f"the installed package lacks {name}")
    version = metadata.version(DISTRIBUTION)
    if version != micrograd.__version__:
        problems.append(f"{DISTRIBUTION} {version} is installed but micrograd.__version__ is {micrograd.__version__}")
    info = run_console_script()
    if info.returncode != 0 or expect_backend not in info.stdout:
        problems.append(f"the `micrograd info` console script failed: {info.stdout}{info.stderr}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--expect-backend", choices=("cython", "python"), required=True)
    args, pytest_args = parser.parse_known_args(argv)
    if Path.cwd().resolve() == PROJECT:
        print("run_installed_tests: run me from outside the project, or the source tree is imported",
              file=sys.stderr)
        return 1

    import pytest

    # no cacheprovider: nothing is written into the project's .pytest_cache
    status = pytest.main([str(PROJECT / "tests"), "-p", "no:cacheprovider", *pytest_args])
    problems = check_installed(args.expect_backend)
    for problem in problems:
        print(f"run_installed_tests: FAIL: {problem}", file=sys.stderr)
    if not problems:
        print(f"run_installed_tests: the suite ran on the installed {DISTRIBUTION} ({args.expect_backend} engine)")
    return int(status) or (1 if problems else 0)


if __name__ == "__main__":
    sys.exit(main())
