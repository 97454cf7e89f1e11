"""Calling __init__ again on a live Value (issue 11: items 1, 4, 6, 8, 11, 12): it resets every
field as a new Value's, changes nothing when it fails, never makes a cycle, and frees at once
what it drops."""
import sys
import textwrap

import pytest


def run_isolated(run_python, code, engine):
    """Run code in a fresh interpreter with V = engine's Value; fail on a signal (a crash)."""
    module = "micrograd.pure" if engine.__module__ == "micrograd.pure" else "micrograd._engine"
    script = f"from {module} import Value as V\n" + textwrap.dedent(code)
    proc = run_python(script)
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_reinit_of_an_interior_node_as_a_leaf_does_not_crash(engine, run_python):
    out = run_isolated(
        run_python,
        """
        a = V(1.) + V(2.)
        a.__init__(3.)
        a._backward()
        a.backward()
        b = V(1.) * V(2.)
        V.__init__(b, 4.)   # as a pickle naming only Value and Value.__init__ would
        b._backward()
        c = V(1.).tanh()
        step = c._backward  # read before the re-init: it must refuse, not crash
        c.__init__(5.)
        try:
            step()
        except ValueError as exc:
            print("refused:", "re-initialised" in str(exc))
        print(a.data, a.grad, a._op, a._prev, b.data, b._prev)
        """,
        engine,
    )
    assert out.split("\n")[:2] == ["refused: True", "3.0 1.0  () 4.0 ()"]


def test_reinit_resets_grad_and_op_on_both_engines(both_engines):
    seen = []
    for Value in both_engines:
        a = Value(1.0) * Value(2.0)
        a.grad = 5.0
        a.label = "a"
        a.__init__(3.0)
        seen.append((a.data, a.grad, a._op, a._prev, a.label, a._code))
    assert seen[0] == seen[1] == (3.0, 0.0, "", (), "", 0)


@pytest.mark.parametrize(
    "args, kwargs, exc",
    [
        ((3.0, (None,), ""), {}, TypeError),  # a child that is not a Value
        ((3.0, ("x",), "relu"), {}, TypeError),
        (("3",), {}, TypeError),  # bad data
        ((3.0, (), "", 5), {}, TypeError),  # bad label
        ((3.0, (1,), (1.0,)), {}, TypeError),
        ((3.0, [], 7), {}, TypeError),  # neither an _op string nor local gradients
        ((3.0, (), None), {}, TypeError),
        ((3.0, (), "f"), {"local_grads": (1.0,)}, ValueError),  # a number for a missing child
    ],
)
def test_a_failed_reinit_changes_nothing(both_engines, args, kwargs, exc):
    messages = []
    for Value in both_engines:
        x = Value(2.0)
        y = x * 3
        y.grad = 1.5
        y.label = "y"
        before = (y.data, y.grad, y._op, y._prev, y.label, y._code)
        with pytest.raises(exc) as info:
            y.__init__(*args, **kwargs)
        assert (y.data, y.grad, y._op, y._prev, y.label, y._code) == before
        y.backward()
        assert x.grad == 3.0  # still a working mul node
        messages.append(str(info.value).replace("micrograd._engine.Value", "Value"))
    assert messages[0] == messages[1]


def test_a_reinit_that_would_make_a_cycle_is_refused(both_engines):
    messages = []
    for Value in both_engines:
        a = Value(1.0)
        b = a.relu()
        c = b * 2
        for kids in [(a,), (b,), (c, Value(1.0)), (Value(1.0), c)]:
            with pytest.raises(ValueError, match="cycle") as info:
                a.__init__(0.5, kids, "tanh")
            assert a._prev == () and a.data == 1.0
        with pytest.raises(ValueError, match="cycle"):
            c.__init__(0.5, (b, Value(2.0), c), (1.0, 1.0, 1.0))
        a.__init__(0.5, (Value(3.0),), "f")  # a child from elsewhere is fine
        assert a._op == "f"
        messages.append(str(info.value).replace("micrograd._engine.Value", "Value"))
    assert messages[0] == messages[1]


def test_a_reinit_that_drops_a_long_chain_frees_it_at_once(engine):
    # The chain's first node holds a reference to x; once the chain is freed, x's count drops.
    x = engine(1.0)
    base = sys.getrefcount(x)
    root = x
    for _ in range(200_000):
        root = root * 1.0000001
    assert sys.getrefcount(x) == base + 1
    root.__init__(0.0)
    assert sys.getrefcount(x) == base
