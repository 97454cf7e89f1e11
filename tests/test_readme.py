"""README's examples whose printed output README shows: each runs on both engines and must
print exactly that. (Karpathy's example is tests/test_engine.py::test_readme_example.)"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import micrograd
from micrograd import engine as engine_module

README = Path(__file__).resolve().parent.parent / "README.md"
PACKAGE_PARENT = str(Path(micrograd.__file__).resolve().parent.parent)

# A python block, then a paragraph beginning "prints", then a plain block: the output.
EXAMPLE = re.compile(
    r"```python\n(?P<code>(?:(?!```).)*)```\n\nprints[^\n]*\n(?:[^\n]+\n)*?\n```\n(?P<out>(?:(?!```).)*)```", re.S
)


def examples():
    if not README.exists():  # an installed wheel's test run has no README beside it
        return []
    found = [(m.group("code"), m.group("out")) for m in EXAMPLE.finditer(README.read_text())]
    assert len(found) >= 2, "README's printed examples were not found: has the layout changed?"
    return found


@pytest.mark.slow
@pytest.mark.parametrize("engine_name", ["python", pytest.param("cython", marks=pytest.mark.cython)])
@pytest.mark.parametrize("index", range(2))
def test_readme_example_prints_what_readme_says(engine_name, index, tmp_path):
    cases = examples()
    if not cases:
        pytest.skip("README.md is not beside the tests (running against an installed package)")
    if engine_name not in engine_module.ENGINES:
        pytest.skip(f"compiled engine not built here: {engine_module.EXTENSION_ERROR}")
    code, expected = cases[index]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICROGRAD_")}
    env["PYTHONPATH"] = PACKAGE_PARENT
    env["MICROGRAD_PUREPYTHON"] = "1" if engine_name == "python" else "0"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected
