"""Every op of micrograd._ops.OPS reaches every consumer: both engines, both tapes, the Python
and C kernels, explain, graph and gradcheck. Adding an op to OPS and forgetting one of them
fails here (docs/adding-an-op.md is the recipe)."""
import math
import os
import re
import struct

import pytest

from micrograd import _ops, kernels
from micrograd.explain import BackwardStepper
from micrograd.gradient_check import gradcheck
from micrograd.graph import apply_op, topological_order
from micrograd.tape import Tape

OPS = [op for op in _ops.OPS if op.code != _ops.LEAF]

# Operand data where every op is defined, with a derivative, away from kinks.
X, Y, K = 0.7, 1.3, 3.0


def build(op, Value):
    """(operand leaves, the node of op) on engine Value, through the op's own Value method."""
    a, b = Value(X), Value(Y)
    method = getattr(a, op.method)
    if op.code == _ops.POWC:
        return (a,), method(K)
    if op.arity == 2:
        return (a, b), method(b)
    return (a,), method()


def bits(x):
    return struct.pack("<d", x)


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_both_engines_build_and_differentiate_the_op_identically(both_engines, op):
    results = []
    for Value in both_engines:
        leaves, out = build(op, Value)
        assert out._code == op.code and out._prev == leaves
        out.backward()
        results.append([bits(out.data)] + [bits(v.grad) for v in leaves] + [bits(g) for g in out._local_grads])
    assert results[0] == results[1]


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_python_kernel_is_what_the_engine_computes(engine, op):
    leaves, out = build(op, engine)
    y = leaves[1].data if len(leaves) > 1 else (K if op.code == _ops.POWC else 0.0)
    assert bits(kernels.forward(op.code, X, y)) == bits(out.data)
    grads = kernels.local_grads(op.code, X, y, out.data)
    assert len(grads) == len(leaves) == len(out._local_grads)
    out.backward()
    assert [bits(v.grad) for v in leaves] == [bits(g * 1.0) for g in grads]


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_both_tapes_replay_the_op_bit_for_bit(engine, op):
    leaves, out = build(op, engine)
    out.backward()
    eager = [bits(out.data)] + [bits(v.grad) for v in leaves]
    tape = Tape(out)
    assert op.code in tape._structure()[0]
    for v in leaves:
        v.grad = 0.0
    tape.forward()
    tape.backward()
    assert [bits(out.data)] + [bits(v.grad) for v in leaves] == eager


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_explain_graph_and_gradcheck_know_the_op(engine, op):
    leaves, out = build(op, engine)
    (step,) = list(BackwardStepper(out))
    assert len(step.operands) == len(leaves)
    assert all(o.grad_after == o.grad_before + o.grad_out for o in step.operands if len(set(map(id, leaves))) == len(leaves))
    redone = apply_op(out, list(leaves))
    assert redone._op == out._op and bits(redone.data) == bits(out.data)
    assert gradcheck(out).ok
    assert [v._op for v in topological_order(out)][-1] == out._op


def test_kernel_tables_cover_exactly_the_ops():
    assert set(kernels.KERNELS) == {op.code for op in OPS}
    for op in OPS:
        assert len(kernels.KERNELS[op.code].formulas) == max(op.arity, 1)


def test_c_header_declares_exactly_the_ops():
    # The names, in code order, and the enum values of micrograd/_kernels.h.
    assert kernels.c_op_names() == [op.name for op in _ops.OPS]
    with open(kernels.C_HEADER, encoding="utf-8") as f:
        text = f.read()
    for op in _ops.OPS:
        assert re.search(rf"\bMG_{op.name.upper()} = {op.code}\b", text), op.name
    assert re.search(rf"\bMG_N_OPS = {len(_ops.OPS)}\b", text)


def test_compiled_engine_and_tape_use_the_table():
    _engine = pytest.importorskip("micrograd._engine", reason="compiled engine not built")
    _tape = pytest.importorskip("micrograd._tape", reason="compiled tape not built")
    assert _engine.OP_CODES == _ops.OP_CODES
    assert _tape.SUPPORTED_CODES == {op.code for op in _ops.OPS}


def test_c_header_is_shipped_as_package_data():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml"), encoding="utf-8") as f:
        assert '"_kernels.h"' in f.read()
    assert os.path.isfile(kernels.C_HEADER)


@pytest.mark.parametrize("code", [_ops.LEAF, 11, 63, 99])
def test_unknown_op_code_is_an_error_everywhere_in_python(code):
    with pytest.raises(ValueError, match=f"op code {code} has no forward or backward rule"):
        kernels.forward(code, 1.0, 2.0)
    with pytest.raises(ValueError, match=f"op code {code}"):
        kernels.local_grads(code, 1.0, 2.0, 3.0)
    with pytest.raises(ValueError, match=f"op code {code}"):
        kernels.FORWARD[code](1.0, 2.0)
    with pytest.raises(ValueError, match=f"op code {code}"):
        kernels.GRADS[code](1.0, 2.0, 3.0)


def test_pure_engine_refuses_an_unknown_code():
    from micrograd import pure

    v = pure.Value(1.0).tanh()
    v._code = 99  # only a bug could do this; it must not run another op's rule
    with pytest.raises(ValueError, match="op code 99"):
        v.backward()


def test_pure_tape_refuses_an_unknown_code():
    from micrograd import pure

    x = pure.Value(0.5)
    tape = Tape(x.tanh())
    tape._code[0] = 99  # only a bug could do this
    with pytest.raises(ValueError, match="op code 99"):
        tape.backward()
    with pytest.raises(ValueError, match="op code 99"):
        tape.forward()


def test_forward_error_names_the_op():
    assert isinstance(kernels.forward_error(_ops.LOG, -1.0, 0.0), ValueError)
    assert isinstance(kernels.forward_error(_ops.EXP, 1000.0, 0.0), OverflowError)
    assert isinstance(kernels.forward_error(_ops.POWC, 0.0, -1.0), ZeroDivisionError)
    assert isinstance(kernels.forward_error(99, 0.0, 0.0), ValueError)
    assert isinstance(kernels.forward_error(_ops.TANH, 0.0, 0.0), RuntimeError)  # cannot fail
    assert math.isnan(kernels.abs_grads(math.nan, 0.0, math.nan)[0])


def test_every_op_method_is_on_both_engines_and_in_the_stub(engine):
    import ast

    stub = ast.parse(open(os.path.join(os.path.dirname(kernels.__file__), "_engine.pyi"), encoding="utf-8").read())
    (cls,) = [n for n in stub.body if isinstance(n, ast.ClassDef) and n.name == "Value"]
    declared = {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}
    for op in OPS:
        assert callable(getattr(engine, op.method)), op.name
        assert op.method in declared, op.name
