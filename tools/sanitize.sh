#!/usr/bin/env bash
# Build the compiled engine with AddressSanitizer + UndefinedBehaviorSanitizer and run the whole
# suite against it; fail on any sanitizer report (or any test failure).
#
#   bash tools/sanitize.sh [pytest args]     e.g. bash tools/sanitize.sh tests/test_tape.py -x
#
# The source tree is copied (tracked and new files, as `git ls-files` sees them) into
# build/sanitize/ and built there in place with MICROGRAD_SANITIZE=1 (see setup.py), so the
# worktree's own extension is left alone. The interpreter is not instrumented, so libasan must
# be loaded before it: LD_PRELOAD. CPython frees little at exit by design, so leak detection is
# off. PYTHONMALLOC=malloc makes every Python object a malloc block of its own, so a freed Value
# read through a stale pointer is caught (pymalloc would hide it in a reused arena).
# Reports go to log files as well as stderr, so one from a subprocess a test starts (they
# inherit the environment) also fails the run.
#
# Needs gcc (or CC=clang with its runtime), Linux, Python with the test extras installed
# (pytest, hypothesis; numpy optional). PYTHON=... picks the interpreter (default python3).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
# a path relative to where we were called from (e.g. .venv/bin/python) must survive the cd below
case "$PYTHON" in */*) PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")" ;; esac
CC=${CC:-gcc}
OUT=$ROOT/build/sanitize
START=$SECONDS
step() { printf '\n==== [%3ds] %s\n' $((SECONDS - START)) "$*"; }

step "copy the source tree to $OUT/src"
rm -rf "$OUT"
mkdir -p "$OUT/src" "$OUT/logs"
(cd "$ROOT" && git ls-files --cached --others --exclude-standard -z \
    | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
    | tar --null -T - -cf -) | tar -xf - -C "$OUT/src"

step "build the extension with -fsanitize=address,undefined ($CC)"
unset MICROGRAD_PUREPYTHON MICROGRAD_DEBUG_BUILD
(cd "$OUT/src" && CC=$CC MICROGRAD_SANITIZE=1 MICROGRAD_REQUIRE_EXTENSION=1 \
    "$PYTHON" setup.py -q build_ext --inplace >"$OUT/build.log" 2>&1) \
    || { cat "$OUT/build.log"; echo "sanitize: the instrumented build failed" >&2; exit 1; }

LIBASAN=$("$CC" -print-file-name=libasan.so)
[ -e "$LIBASAN" ] || { echo "sanitize: $CC has no libasan.so ($LIBASAN)" >&2; exit 1; }
# libstdc++ loaded up front too: ASan intercepts C++ throws (__cxa_throw) and must find the
# real one at startup, or a C++ extension that throws later (matplotlib's) trips its check.
PRELOAD=$LIBASAN
LIBSTDCXX=$("$CC" -print-file-name=libstdc++.so)
[ -e "$LIBSTDCXX" ] && PRELOAD="$PRELOAD $LIBSTDCXX"

step "run the suite under ASan + UBSan (LD_PRELOAD=$PRELOAD)"
status=0
(cd "$OUT/src" && \
    LD_PRELOAD=$PRELOAD \
    ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:strict_string_checks=1:log_path=$OUT/logs/asan" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$OUT/logs/ubsan" \
    PYTHONMALLOC=malloc MICROGRAD_REQUIRE_EXTENSION=1 \
    "$PYTHON" -m pytest -q -p no:cacheprovider "$@") || status=$?

if compgen -G "$OUT/logs/*" >/dev/null; then
    cat "$OUT"/logs/* >&2
    echo "sanitize: FAIL: sanitizer reports above (logs in $OUT/logs)" >&2
    exit 1
fi
if [ "$status" -ne 0 ]; then
    echo "sanitize: FAIL: the suite failed under the sanitizers (exit $status)" >&2
    exit "$status"
fi
step "sanitize: OK, no sanitizer report"
