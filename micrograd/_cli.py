"""What to call the program in usage lines: the user may have typed `micrograd demo` (the console
script) or `python -m micrograd demo`, and help should echo what they typed."""
from __future__ import annotations

import os
import sys


def program_name(command: str = "") -> str:
    """'micrograd <command>' under the console script, else 'python -m micrograd <command>'."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    script = os.path.basename(argv0.replace("\\", "/"))  # Windows paths too
    stem = os.path.splitext(script)[0]  # micrograd, micrograd.exe, micrograd-script.py (Windows)
    base = "micrograd" if stem in ("micrograd", "micrograd-script") else "python -m micrograd"
    return f"{base} {command}".strip()


# Never a plain `pip install torch`: on Linux that pulls gigabytes of CUDA packages.
TORCH_HINT = (
    "pip install torch==2.13.0 (on Linux the CPU-only build is enough: "
    "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu)"
)
