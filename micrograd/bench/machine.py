"""What a benchmark figure needs beside it: the machine, the interpreter, the compilers and the
versions of every engine (each engine's own version comes from its subprocess)."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import sysconfig
from typing import Any, Dict, Optional


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5)
            if out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def memory_total() -> Optional[int]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def usable_cores() -> Optional[int]:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def load_average() -> Optional[list]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def package_version(name: str) -> Optional[str]:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:
        return None
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def extension_info() -> Dict[str, Any]:
    """Whether the compiled engine loaded, and from which file (or why not)."""
    from micrograd import engine

    info: Dict[str, Any] = {"loaded": "cython" in engine.ENGINES}
    if engine.EXTENSION_ERROR:
        info["error"] = engine.EXTENSION_ERROR
    else:
        from micrograd import _engine

        info["file"] = _engine.__file__
    return info


def collect(compiler: Optional[str] = None, compiler_version: Optional[str] = None) -> Dict[str, Any]:
    import micrograd

    return {
        "cpu": cpu_model(),
        "cores_usable": usable_cores(),
        "cores_total": os.cpu_count(),
        "memory_bytes": memory_total(),
        "load_average_at_start": load_average(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "python_compiler": platform.python_compiler(),
        "python_executable": sys.executable,
        "python_cflags": sysconfig.get_config_var("CFLAGS"),
        "python_cc": sysconfig.get_config_var("CC"),
        "cython": package_version("Cython"),
        "c_compiler": compiler,
        "c_compiler_version": compiler_version,
        "micrograd_fast": micrograd.__version__,
        "micrograd_engines": list(micrograd.ENGINES),
        "extension": extension_info(),
        "torch": package_version("torch"),
        "env": {k: v for k, v in os.environ.items() if k.startswith("MICROGRAD_") or k in ("CC", "CFLAGS", "PYTHONHASHSEED")},
    }
