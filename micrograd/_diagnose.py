"""Why the compiled engine is not loaded, said in words a user can act on.

The classic trap: inside a clone of this repository, ``python -m micrograd ...`` and
``python -c "import micrograd"`` put the current folder first on ``sys.path``, so they import the
source folder ``./micrograd`` (no compiled engine unless built in place) instead of the copy that
``pip install .`` just put in site-packages with its compiled engine. The ``micrograd`` console
script is not affected: its ``sys.path[0]`` is the folder of the script, not the current one.

Nothing here runs unless the extension failed to import, so a working install pays nothing.
"""
from __future__ import annotations

import os
import sys
import warnings
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import List, Optional

PACKAGE_DIR = Path(__file__).resolve().parent
BUILD_IN_PLACE = "python setup.py build_ext --inplace"


class ShadowedInstallWarning(RuntimeWarning):
    """micrograd was imported from a source tree without its compiled engine while an installed
    copy with the engine is on ``sys.path`` behind it."""


def has_extension(package_dir: Path) -> bool:
    """True if ``package_dir`` holds a compiled ``_engine`` module this interpreter can load."""
    return any((package_dir / f"_engine{suffix}").is_file() for suffix in EXTENSION_SUFFIXES)


def is_source_tree(package_dir: Path = PACKAGE_DIR) -> bool:
    """True for the ``micrograd/`` folder of a checkout (the Cython sources sit beside it)."""
    return (package_dir.parent / "src_cy" / "micrograd" / "_engine.pyx").is_file()


def shadowed_copies(package_dir: Path = PACKAGE_DIR, path: Optional[List[str]] = None) -> List[Path]:
    """Other ``micrograd`` packages on ``sys.path`` (after the one imported) that have a compiled
    engine: what the user would have got from another working directory."""
    found = []
    for entry in sys.path if path is None else path:
        try:
            candidate = (Path(entry or os.curdir) / "micrograd").resolve()
        except (OSError, RuntimeError, ValueError):  # unreadable or odd sys.path entries
            continue
        if candidate != package_dir and candidate not in found and has_extension(candidate):
            found.append(candidate)
    return found


def missing_extension_reason(error: Optional[str], package_dir: Path = PACKAGE_DIR) -> str:
    """One or two sentences: why the compiled engine is not loaded here, and the fix."""
    detail = f" ({error})" if error else ""
    shadowed = shadowed_copies(package_dir)
    if shadowed:
        return (
            f"micrograd was imported from {package_dir}, which has no compiled engine{detail}; "
            f"it hides the installed copy in {shadowed[0]}, which has one, because `python -m` and "
            "`python -c` put the current folder first on sys.path. Fix: run from another folder, use "
            f"the `micrograd` command, or build the engine in place: {BUILD_IN_PLACE} (or pip install -e .)"
        )
    if is_source_tree(package_dir):
        return (
            f"the compiled engine is not built in the source tree {package_dir}{detail}: "
            f"build it in place with {BUILD_IN_PLACE} (or pip install -e .), "
            "or pip install . and run from another folder"
        )
    return (
        f"this install of micrograd ({package_dir}) has no compiled engine{detail}: it was installed "
        "without a C compiler or as the pure wheel; reinstall with a C compiler present "
        "(pip install --force-reinstall --no-binary micrograd-fast micrograd-fast, or pip install . from a checkout)"
    )


def warn_if_shadowed(error: Optional[str]) -> None:
    """Called by micrograd.engine when the extension did not load and pure Python was not asked
    for: warn only in the shadowing case, where the user surely expected the compiled engine."""
    if shadowed_copies():
        message = f"{missing_extension_reason(error)}. Until then the pure engine (about 100x slower) runs."
        warnings.warn(message, ShadowedInstallWarning, stacklevel=2)
