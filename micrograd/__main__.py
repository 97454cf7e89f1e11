"""micrograd's command line (the micrograd console script, or python -m micrograd).

usage: {prog} <command> [options]

commands:
  demo    train Karpathy's two-moons MLP and show how fast it went
  bench   the benchmark suite across engines and peers
  viz     draw an example graph as DOT/SVG/PNG or a text tree
  info    which micrograd was imported, which engines it found, and why

{prog} <command> --help shows a command's options.
"""
from __future__ import annotations

import importlib
import os
import sys

from micrograd._cli import program_name

COMMANDS = {
    "demo": "micrograd.demo",
    "bench": "micrograd.bench",
    "viz": "micrograd.viz",
    "info": None,
}


def usage() -> str:
    return __doc__.format(prog=program_name()).strip()


def info() -> int:
    import platform

    import micrograd
    from micrograd import _diagnose, engine

    print(f"micrograd {micrograd.__version__} on Python {platform.python_version()} ({sys.executable})")
    print(f"imported from: {os.path.dirname(os.path.abspath(micrograd.__file__))}")
    print(f"active engine: {engine.BACKEND}")
    print("engines found:")
    for name, value in engine.ENGINES.items():
        module = sys.modules[value.__module__]
        print(f"  {name:<7} {value.__module__} ({getattr(module, '__file__', '?')})")
    if engine.EXTENSION_ERROR:
        print(f"  cython  not loaded: {_diagnose.missing_extension_reason(engine.EXTENSION_ERROR)}")
    if engine.BACKEND == "python" and "cython" in engine.ENGINES:
        print("MICROGRAD_PUREPYTHON is set: the pure engine is active although the compiled one loads")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"{program_name()}: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    if command == "info":
        return info()
    module = importlib.import_module(COMMANDS[command])
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
