"""The printed examples of README.md and of the manual (docs/**/*.md): each page runs on both
engines and must print exactly what it shows.

How a page is read (the rules an author follows):

- A page is one session: its ```python blocks run in order in one namespace, like notebook
  cells, in a fresh interpreter (working directory: a temporary folder).
- A python block's expected output is the plain ``` block (no language) that follows it, either
  at once or after one paragraph beginning with "prints". Its output must equal that text.
- A python block with no output block may say what it prints in comments, as Karpathy's
  README example does (``print(...)  # prints 24.7041, ...``): then the printed lines must be
  exactly those words. Otherwise it must print nothing, so no printed output goes unchecked.
- ``<!-- not run: REASON -->`` on the line before a python block leaves it out (e.g. it needs
  Graphviz); say in REASON where it is tested instead.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import micrograd
from micrograd import engine as engine_module

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_PARENT = str(Path(micrograd.__file__).resolve().parent.parent)

FENCE = re.compile(r"^```(?P<lang>[\w-]*)[ \t]*\n(?P<body>.*?)^```[ \t]*$", re.S | re.M)
NOT_RUN = re.compile(r"<!-- not run: [^\n]+-->\s*$")
PRINTS_COMMENT = re.compile(r"#\s*prints\s+([^,\s]+)")

# Runs in the child interpreter: the blocks (a JSON list on stdin) in one namespace, each one's
# stdout captured on its own; stops at the first block that raises.
RUNNER = r"""
import contextlib, io, json, sys, traceback
blocks = json.load(sys.stdin)
namespace = {"__name__": "__main__"}
results = []
for index, code in enumerate(blocks):
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"<block {index + 1}>", "exec"), namespace)
    except BaseException:
        results.append({"out": out.getvalue(), "error": traceback.format_exc()})
        break
    results.append({"out": out.getvalue(), "error": None})
sys.__stdout__.write(json.dumps(results))
"""


def pages():
    """README.md and every page of the manual; none beside an installed package's tests."""
    readme = ROOT / "README.md"
    if not readme.exists():
        return []
    return [readme] + sorted((ROOT / "docs").rglob("*.md"))


def examples(text):
    """The page's python blocks to run, in order: (code, expected output or None for 'must print
    nothing'), following the rules in this module's docstring."""
    fences = list(FENCE.finditer(text))
    found = []
    for i, fence in enumerate(fences):
        if fence.group("lang") != "python":
            continue
        before = text[fences[i - 1].end() if i else 0:fence.start()]
        if NOT_RUN.search(before):
            continue
        code = fence.group("body")
        expected = None
        if i + 1 < len(fences) and fences[i + 1].group("lang") == "":
            between = text[fence.end():fences[i + 1].start()].strip()
            if not between or (between.startswith("prints") and "\n\n" not in between):
                expected = fences[i + 1].group("body")
        if expected is None and PRINTS_COMMENT.search(code):
            expected = "".join(word + "\n" for word in PRINTS_COMMENT.findall(code))
        found.append((code, expected))
    return found


def run_page(blocks, engine_name, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICROGRAD_")}
    env["PYTHONPATH"] = PACKAGE_PARENT
    env["MICROGRAD_PUREPYTHON"] = "1" if engine_name == "python" else "0"
    result = subprocess.run(
        [sys.executable, "-c", RUNNER], input=json.dumps(blocks), capture_output=True, text=True, env=env, cwd=cwd
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


PAGES = pages()
RUNNABLE = [page for page in PAGES if examples(page.read_text())]


def test_pages_have_printed_examples():
    if not PAGES:
        pytest.skip("README.md is not beside the tests (running against an installed package)")
    checked = {page.relative_to(ROOT).as_posix(): sum(expected is not None for _, expected in examples(page.read_text()))
               for page in PAGES}
    # README (Karpathy's example) and the manual's Tape, training and graph-tools pages show
    # printed output: if none is found there, the layout changed and the test would see nothing.
    # (An sdist ships README.md but not docs/.)
    manual = ("docs/tape.md", "docs/training.md", "docs/graph-tools.md") if (ROOT / "docs").is_dir() else ()
    for name in ("README.md",) + manual:
        assert checked.get(name, 0) >= 1, f"no printed example found in {name}: {checked}"


@pytest.mark.slow
@pytest.mark.parametrize("engine_name", ["python", pytest.param("cython", marks=pytest.mark.cython)])
@pytest.mark.parametrize("page", RUNNABLE or [None], ids=lambda p: p.relative_to(ROOT).as_posix() if p else "no-pages")
def test_page_prints_what_it_says(page, engine_name, tmp_path):
    if page is None:
        pytest.skip("README.md is not beside the tests (running against an installed package)")
    if engine_name not in engine_module.ENGINES:
        pytest.skip(f"compiled engine not built here: {engine_module.EXTENSION_ERROR}")
    cases = examples(page.read_text())
    results = run_page([code for code, _ in cases], engine_name, tmp_path)
    for number, ((code, expected), result) in enumerate(zip(cases, results), 1):
        where = f"{page.name}, python block {number} of {len(cases)}:\n{code}"
        assert result["error"] is None, f"{where}\nraised:\n{result['error']}"
        if expected is None:
            assert result["out"] == "", f"{where}\nprinted output that the page does not show"
        else:
            assert result["out"] == expected, where
    assert len(results) == len(cases)
