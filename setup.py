"""Build: the Cython engine is compiled where possible, and skipped without breaking the install.

    MICROGRAD_PUREPYTHON=1         build no extension (a pure-Python package)
    MICROGRAD_REQUIRE_EXTENSION=1  a failed extension build fails the install (also CIBUILDWHEEL=1)
    MICROGRAD_DEBUG_BUILD=1        Cython bounds checks and line tracing on, C asserts on, -O0 -g
    MICROGRAD_SANITIZE=1           gcc/clang AddressSanitizer + UBSan, symbols kept (tools/sanitize.sh)
"""
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def flag(name):
    return os.environ.get(name, "0") not in ("", "0")


PURE = flag("MICROGRAD_PUREPYTHON")
REQUIRED = flag("MICROGRAD_REQUIRE_EXTENSION") or flag("CIBUILDWHEEL")
DEBUG = flag("MICROGRAD_DEBUG_BUILD")
SANITIZE = flag("MICROGRAD_SANITIZE")
# The release code paths (-O2, no bounds checks), instrumented; any report aborts the process.
SANITIZER_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]

# All Cython compiler directives live here.
DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,  # C division: grad / 0 is inf, as in the pure engine's backward
    "embedsignature": True,
    "linetrace": DEBUG,
}


def extra_compile_args():
    if sys.platform == "win32":
        return ["/fp:precise"]
    # No fused multiply-add: a*b + c must round twice, as Python does, or the two engines'
    # bits differ (GCC contracts by default on aarch64).
    args = ["-ffp-contract=off"]
    args += ["-O0", "-g", "-UNDEBUG"] if DEBUG else ["-O2", "-g0"]
    if SANITIZE:
        args += SANITIZER_FLAGS + ["-g"]
    return args


def extra_link_args():
    if SANITIZE:
        return SANITIZER_FLAGS
    # Release builds on Linux drop the symbol table too: smaller wheels, nothing lost to users.
    return ["-s"] if sys.platform.startswith("linux") and not DEBUG else []


def extensions():
    if PURE:
        print("micrograd: MICROGRAD_PUREPYTHON is set, building the pure-Python package only")
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        if REQUIRED:
            raise
        print("micrograd: Cython is not installed, building the pure-Python package only")
        return []
    # One extension per src_cy/micrograd/<name>.pyx, importable as micrograd.<name>.
    exts = [
        Extension(
            f"micrograd.{os.path.splitext(name)[0]}",
            [f"src_cy/micrograd/{name}"],
            extra_compile_args=extra_compile_args(),
            extra_link_args=extra_link_args(),
            include_dirs=["micrograd"],  # micrograd/_kernels.h (the ops' C kernels), _matmul.h
            define_macros=[("CYTHON_TRACE", "1")] if DEBUG else [],
        )
        for name in sorted(os.listdir("src_cy/micrograd"))
        if name.endswith(".pyx")
    ]
    try:
        built = cythonize(exts, include_path=["src_cy"], compiler_directives=DIRECTIVES)
    except Exception as exc:  # e.g. a Cython too old for the sources
        if REQUIRED:
            raise
        print(f"micrograd: cythonize failed ({exc}), building the pure-Python package only")
        return []
    for e in built:
        e.optional = not REQUIRED  # cythonize() drops Extension(optional=...)
    return built


class BuildExt(build_ext):
    """Says loudly, where setuptools only warns, that the install falls back to pure Python."""

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            if not getattr(ext, "optional", False):
                raise
            print(
                "\n" + "*" * 72 + f"\nmicrograd: could not compile {ext.name} ({exc}).\n"
                "Installing the pure-Python engine only: it works, but is ~100x slower.\n"
                "micrograd.BACKEND will say 'python'. Install a C compiler and reinstall\n"
                "for the compiled engine.\n" + "*" * 72 + "\n",
                file=sys.stderr,
            )


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
