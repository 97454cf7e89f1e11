"""How ``names.txt`` was made: the first names of the 1990 US Census, as shipped (public domain)
in the ``names`` package on PyPI.

    python examples/data/make_names.py                       # downloads the sdist with pip
    python examples/data/make_names.py names-0.3.0.tar.gz    # or reads one you downloaded

The rule: take the first column of ``names/dist.female.first`` and ``names/dist.male.first``
from the sdist of ``names==0.3.0``, lowercase it, keep the names made of the letters a-z only,
drop duplicates (a name on both lists is kept once), and sort alphabetically. One name per line.
The file is sorted so that it is reproducible and diffs well; ``examples/microgpt.py`` shuffles
it with its own seed, as Karpathy's microgpt shuffles his list.

The sdist's SHA-256 is checked, so a different file cannot silently give a different list.
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from typing import Iterable, List, Optional

PIN = "names==0.3.0"
SDIST = "names-0.3.0.tar.gz"
SHA256 = "726e46254f2ed03f1ffb5d941dae3bc67c35123941c29becd02d48d0caa2a671"
MEMBERS = ("names-0.3.0/names/dist.female.first", "names-0.3.0/names/dist.male.first")
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "names.txt")


def first_names(lines: Iterable[str]) -> List[str]:
    """The lowercased first column of a Census ``dist.*.first`` file ('MARY 2.629 2.629 1')."""
    return [line.split()[0].lower() for line in lines if line.strip()]


def clean(names: Iterable[str]) -> List[str]:
    """Letters a-z only, each name once, sorted."""
    return sorted({n for n in names if re.fullmatch(r"[a-z]+", n)})


def read_sdist(path: str) -> List[str]:
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"{path}: SHA-256 {digest}, expected {SHA256} ({PIN})")
    names: List[str] = []
    with tarfile.open(path) as tar:
        for member in MEMBERS:
            data = tar.extractfile(member)
            if data is None:
                raise SystemExit(f"{path} has no file {member}")
            names += first_names(data.read().decode("ascii").splitlines())
    return clean(names)


def download(folder: str) -> str:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", folder, PIN], check=True)
    return os.path.join(folder, SDIST)


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    with tempfile.TemporaryDirectory() as tmp:
        names = read_sdist(argv[0] if argv else download(tmp))
    with open(OUT, "w", newline="\n") as f:
        f.write("\n".join(names) + "\n")
    print(f"wrote {len(names)} names to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
