"""``python -m micrograd <command>`` (also the ``micrograd`` console script).

    demo   train the two-moons MLP and show how fast it went      (micrograd.demo)
    bench  the benchmark suite across engines and peers            (micrograd.bench)
    viz    draw an example graph as DOT/SVG/PNG or a text tree     (micrograd.viz)
    info   which engine is active, and why
"""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "demo": "micrograd.demo",
    "bench": "micrograd.bench",
    "viz": "micrograd.viz",
    "info": None,
}


def info() -> int:
    import platform

    import micrograd
    from micrograd import engine

    print(f"micrograd {micrograd.__version__} on Python {platform.python_version()} ({sys.executable})")
    print(f"active engine: {engine.BACKEND}")
    print(f"engines loaded: {', '.join(engine.ENGINES)}")
    if engine.EXTENSION_ERROR:
        print(f"compiled engine not loaded: {engine.EXTENSION_ERROR}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__.strip())
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    command, rest = argv[0], argv[1:]
    if command == "info":
        return info()
    module = importlib.import_module(COMMANDS[command])
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
