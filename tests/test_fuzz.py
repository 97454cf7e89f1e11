"""Differential fuzzing: random programs run on both engines, and replayed by Tape, must agree
bit for bit (NaN by NaN: docs/differences.md), exceptions included (type and message).

A program is a list of instructions over a growing list of Values ("registers"): make a leaf
from a number, apply an op (every op of micrograd._ops.OPS, so a new op is fuzzed as soon as it
is in the table), combine a Value with a number in either order, call backward() (again and
again), call one node's _backward(), set .data or .grad of any node mid-graph, capture a Tape
and compare its replay with the same graph rebuilt eagerly, and (see REINIT below) re-initialise
a node. Every instruction's outcome and, at the end, every register's data and grad form a
trace; the traces of the two engines must be equal.

Examples per run: FUZZ_EXAMPLES below (a few seconds, for CI); MICROGRAD_FUZZ_EXAMPLES=100000
for a long run.
"""
import builtins
import math
import operator
import os
from decimal import Decimal

import pytest

from micrograd import _ops
from micrograd.graph import apply_op, topological_order
from micrograd.tape import Tape

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed (pip install -e .[test])")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

try:
    import numpy as np
except ImportError:  # optional: the NumPy numbers are then left out, and a test says so
    np = None

pytestmark = pytest.mark.cython

# Re-initialising a live node (v.__init__(...)) is issue 11 #1, #4, #6, #8, #11, #12, fixed on
# another branch: until that lands the compiled engine can crash on it, so it is not drawn.
# Turn it on once Value.__init__ resets every field on both engines.
REINIT = True

FUZZ_EXAMPLES = int(os.environ.get("MICROGRAD_FUZZ_EXAMPLES", "300"))

# -- numbers ---------------------------------------------------------------------------------

SPECIAL_FLOATS = [0.0, -0.0, math.inf, -math.inf, math.nan, 1.0, -1.0, 0.5, 2.0, 5e-324, 1.7976931348623157e308, 1e-300, 700.0, -745.0]

nice_floats = st.floats(-3.0, 3.0, allow_nan=False)
python_numbers = st.one_of(
    nice_floats,
    st.sampled_from(SPECIAL_FLOATS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5, 5),
    st.sampled_from([True, False, 2**70, -(2**64), 10**400]),  # 10**400: float() overflows
    st.fractions(min_value=-5, max_value=5, max_denominator=7),
    st.sampled_from([Decimal("2.5"), Decimal("-0"), Decimal("1e-3"), Decimal("nan"), Decimal("-inf"), Decimal("1e400")]),
)
if np is not None:
    numpy_numbers = st.one_of(
        st.builds(np.float64, nice_floats),
        st.builds(np.float32, nice_floats),
        st.builds(np.float16, st.sampled_from([0.0, -0.0, 2.5, 65504.0, math.inf, math.nan])),
        st.builds(np.int8, st.integers(-128, 127)),
        st.builds(np.uint8, st.integers(0, 255)),
        st.builds(np.int64, st.integers(-(2**63), 2**63 - 1)),
        st.builds(np.uint64, st.integers(0, 2**64 - 1)),
        st.builds(np.bool_, st.booleans()),
    )
    numbers = st.one_of(nice_floats, python_numbers, numpy_numbers)
else:
    numbers = st.one_of(nice_floats, python_numbers)
not_numbers = st.sampled_from(["a", None, [1.0], 1j, b"x"])
operands = st.one_of(numbers, numbers, numbers, not_numbers)  # mostly numbers

# -- ops: drawn from the op table --------------------------------------------------------------

BINARY_BY_SYMBOL = {"+": operator.add, "*": operator.mul, "**": operator.pow}
CORE_OPS = [op for op in _ops.OPS if op.arity > 0]


def apply_core(op, a, b, k):
    """Apply table op ``op`` to Values a (and b), or to a and the number k for powc."""
    if op.name == "powc":
        return a**k
    if op.arity == 2:
        if op.symbol not in BINARY_BY_SYMBOL:
            pytest.fail(f"test_fuzz does not know how to call binary op {op.name!r}: add it to BINARY_BY_SYMBOL")
        return BINARY_BY_SYMBOL[op.symbol](a, b)
    method = getattr(a, op.name, None)
    if method is not None:  # relu, tanh, exp, log, sigmoid
        return method()
    if hasattr(builtins, op.name):  # an op Python spells as a builtin, e.g. abs(v)
        return getattr(builtins, op.name)(a)
    pytest.fail(f"test_fuzz does not know how to call unary op {op.name!r}")


WITH_NUMBER = {  # Value (op) number, in both orders
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv, "**": operator.pow,
}
COMPOSITE = {"-": operator.sub, "/": operator.truediv, "neg": lambda a, b: -a}

index = st.integers(0, 10**6)  # taken modulo the number of registers
instruction = st.one_of(
    st.tuples(st.just("leaf"), numbers),
    st.tuples(st.just("op"), st.sampled_from(range(len(CORE_OPS))), index, index, numbers),
    st.tuples(st.just("op"), st.sampled_from(range(len(CORE_OPS))), index, index, numbers),
    st.tuples(st.just("number"), st.sampled_from(sorted(WITH_NUMBER)), index, operands, st.booleans()),
    st.tuples(st.just("composite"), st.sampled_from(sorted(COMPOSITE)), index, index),
    st.tuples(st.just("backward"), index),
    st.tuples(st.just("_backward"), index),
    st.tuples(st.just("set"), st.sampled_from(["data", "grad"]), index, operands),
    st.tuples(st.just("tape"), index),
    *([st.tuples(st.just("reinit"), index, numbers, st.lists(index, max_size=2), st.sampled_from(["", "+", "*", "**", "**2", "tanh", "ReLU", "exp", "log", "sigmoid"]))] if REINIT else []),
)
programs = st.lists(instruction, min_size=1, max_size=24)

# -- running a program ---------------------------------------------------------------------------


def bits(x):
    """A float's identity, NaN by NaN (0.0 and -0.0 differ)."""
    return "nan" if x != x else (x, math.copysign(1.0, x))


def failure(exc):
    # CPython names an extension type by its qualified name in its own messages; the rest of
    # each message must be identical (docs/differences.md).
    return (type(exc).__name__, str(exc).replace("micrograd._engine.Value", "Value"))


def run(Value, program):
    """The trace of program on one engine: each instruction's outcome, then every register."""
    regs = [Value(0.5), Value(-1.5)]
    trace = []
    for ins in program:
        kind = ins[0]
        try:
            if kind == "leaf":
                regs.append(Value(ins[1]))
            elif kind == "op":
                _, op, i, j, k = ins
                regs.append(apply_core(CORE_OPS[op], regs[i % len(regs)], regs[j % len(regs)], k))
            elif kind == "number":
                _, sym, i, n, reflected = ins
                v = regs[i % len(regs)]
                regs.append(with_number(Value, WITH_NUMBER[sym], v, n, reflected))
            elif kind == "composite":
                _, name, i, j = ins
                regs.append(COMPOSITE[name](regs[i % len(regs)], regs[j % len(regs)]))
            elif kind == "backward":
                regs[ins[1] % len(regs)].backward()
            elif kind == "_backward":
                regs[ins[1] % len(regs)]._backward()
            elif kind == "set":
                _, field, i, n = ins
                setattr(regs[i % len(regs)], field, n)
            elif kind == "tape":
                trace.append(check_tape(Value, regs[ins[1] % len(regs)]))
            elif kind == "reinit":
                _, i, n, kids, op = ins
                regs[i % len(regs)].__init__(n, [regs[k % len(regs)] for k in kids], op)
            trace.append(("ok", bits(regs[-1].data)))
        except (ArithmeticError, TypeError, ValueError, RuntimeError) as exc:
            trace.append(failure(exc))
    trace.append([(bits(v.data), bits(v.grad), v._op, len(v._prev)) for v in regs])
    return trace


def with_number(Value, op, v, n, reflected):
    """v (op) n, or n (op) v; checked against the same op with Value(n) in n's place: a number
    operand must act as the leaf it becomes (same data bits, or the same kind of error)."""
    try:
        out = op(n, v) if reflected else op(v, n)
    except (ArithmeticError, TypeError, ValueError) as exc:
        if _ops.is_number(n):
            with pytest.raises(type(exc)):
                as_value = Value(n)
                op(as_value, v) if reflected else op(v, as_value)
        raise
    as_value = Value(n)
    expected = op(as_value, v) if reflected else op(v, as_value)
    assert bits(out.data) == bits(expected.data), f"{n!r} acts unlike Value({n!r})"
    return out


def rebuild(root):
    """The graph behind root built again, eagerly, from its leaves' current data: the reference
    a tape replay must equal. Returns (new root, {id(old leaf): new leaf})."""
    Value = type(root)
    new, leaves = {}, {}
    for node in topological_order(root):
        if node._prev:
            new[id(node)] = apply_op(node, [new[id(kid)] for kid in node._prev])
        else:
            leaves[id(node)] = new[id(node)] = Value(node.data)
    return new[id(root)], leaves


def check_tape(Value, root):
    """Capture a tape at root, replay it, and compare with the graph rebuilt eagerly; return
    the outcome for the trace (so that the engines are also compared with each other)."""
    try:
        tape = Tape(root)
    except ValueError as exc:  # a cycle (only re-init makes one)
        return failure(exc)
    try:
        eager_root, fresh = rebuild(root)
        eager = ("ok", bits(eager_root.data))
    except ArithmeticError as exc:
        eager = failure(exc)
    try:
        replay = ("ok", bits(tape.forward()))
    except ArithmeticError as exc:
        replay = failure(exc)
    assert replay == eager, f"Tape.forward {replay} but eager {eager}"
    if replay[0] != "ok":
        with pytest.raises(RuntimeError, match="last forward"):
            tape.backward()
        return ("tape", replay)
    for leaf in tape.leaves:
        fresh[id(leaf)].grad = leaf.grad  # a tape adds into the leaves' grads, as eager does
    eager_root.backward()
    tape.backward()
    replay_grads = [bits(leaf.grad) for leaf in tape.leaves]
    eager_grads = [bits(fresh[id(leaf)].grad) for leaf in tape.leaves]
    assert replay_grads == eager_grads, "Tape.backward differs from eager backward"
    return ("tape", replay, replay_grads)


# both_engines only returns the two classes: sharing it between examples is fine.
@settings(max_examples=FUZZ_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(program=programs)
def test_random_programs_agree_on_both_engines_and_tape(both_engines, program):
    python_trace = run(both_engines[0], program)
    compiled_trace = run(both_engines[1], program)
    assert python_trace == compiled_trace


def test_numpy_numbers_are_fuzzed():
    if np is None:
        pytest.skip("numpy is not installed: the fuzz test runs without NumPy numbers (pip install numpy)")
    drawn = hypothesis.find(numbers, lambda x: isinstance(x, np.generic), settings=settings(database=None))
    assert isinstance(drawn, np.generic)


def test_every_op_of_the_table_is_callable_by_the_fuzzer(both_engines):
    for Value in both_engines:
        for op in CORE_OPS:
            out = apply_core(op, Value(0.5), Value(1.5), 2.0)
            assert out._op == _ops.symbol(op.code, 2.0)
