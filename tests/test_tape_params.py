"""Tape's ``params`` and ``constants``: which leaves backward writes grads into, and which
forward reads no more. Both engines take the same arguments and raise the same errors; the
replays themselves (bits against eager, on grids too) are checked in test_tape_matrix.py
(check_replays' ``roles``) and by its hypothesis test."""
import math

import pytest

from micrograd.tape import Tape

from test_tape_fusion import bits


def small_graph(Value, w=0.5, x=-1.5, c=0.25):
    """(root, w, x, c): root = tanh(w*x + c) * 2 + w, over three leaves."""
    w, x, c = Value(w), Value(x), Value(c)
    return (w * x + c).tanh() * 2 + w, w, x, c


def eager(Value, w, x, c):
    """The root's value and each leaf's grad, from a fresh eager graph on these values."""
    root, *leaves = small_graph(Value, w, x, c)
    root.backward()
    return root.data, [leaf.grad for leaf in leaves]


def test_only_params_get_grads_and_the_other_leaves_keep_theirs(engine):
    root, w, x, c = small_graph(engine)
    tape = Tape(root, params=[w])
    x.grad, c.grad = 7.0, -0.0
    x.data = 2.0  # an input: read again by forward
    value = tape.forward()
    tape.backward()
    e_value, e_grads = eager(engine, 0.5, 2.0, 0.25)
    assert bits(value) == bits(e_value)
    assert bits(w.grad) == bits(e_grads[0])
    assert bits(x.grad) == bits(7.0) and bits(c.grad) == bits(-0.0)


def test_a_constant_is_read_once_at_capture(engine):
    root, w, x, c = small_graph(engine)
    tape = Tape(root, constants=[x, c])
    x.data, c.data, w.data = 100.0, 100.0, 0.75  # the constants' new data is not seen
    value = tape.forward()
    tape.backward()
    e_value, e_grads = eager(engine, 0.75, -1.5, 0.25)
    assert bits(value) == bits(e_value)
    assert bits(w.grad) == bits(e_grads[0])  # params=None: every leaf but the constants
    assert x.grad == 0.0 and c.grad == 0.0
    assert x.data == 100.0  # the tape does not write a constant's data either


def test_defaults_read_every_leaf_and_write_every_grad(engine):
    root, w, x, c = small_graph(engine)
    tape = Tape(root, params=None, constants=())
    x.data = 3.0
    value = tape.forward()
    tape.backward()
    e_value, e_grads = eager(engine, 0.5, 3.0, 0.25)
    assert bits(value) == bits(e_value)
    assert [bits(v.grad) for v in (w, x, c)] == [bits(g) for g in e_grads]


def test_one_value_or_any_iterable_once(engine):
    root, w, x, c = small_graph(engine)
    tape = Tape(root, params=w, constants=(v for v in (x, c)))  # a generator is read once
    x.data = 9.0
    tape.forward()
    tape.backward()
    e_value, e_grads = eager(engine, 0.5, -1.5, 0.25)
    assert bits(tape.root.data) == bits(e_value)
    assert bits(w.grad) == bits(e_grads[0]) and x.grad == 0.0


def test_a_leaf_outside_the_graph_is_accepted_and_left_alone(engine):
    root, w, x, c = small_graph(engine)
    stranger = engine(3.0)
    tape = Tape(root, params=[w, stranger], constants=[engine(1.0)])
    tape.backward()
    assert stranger.grad == 0.0 and w.grad != 0.0


def test_the_root_as_the_only_param(engine):
    leaf = engine(2.0)
    tape = Tape(leaf, params=[leaf])
    leaf.data = 5.0
    assert tape.forward() == 5.0
    tape.backward()
    assert leaf.grad == 1.0


@pytest.mark.parametrize("kwargs, error, message", [
    ({"params": 3.0}, TypeError, "Tape params must be a Value or an iterable of Values, not 'float'"),
    ({"constants": [1.0]}, TypeError, "Tape constants[0] must be a Value of the same engine as the root"),
    ({"params": "interior"}, ValueError, "Tape params[0] "),
    ({"constants": "interior"}, ValueError, "is not a leaf (it has children)"),
    ({"params": "w", "constants": "w"}, ValueError, "Tape params[0] "),
])
def test_bad_params_and_constants_raise_the_same_errors_on_both_engines(both_engines, kwargs, error, message):
    messages = []
    for Value in both_engines:
        root, w, x, c = small_graph(Value)
        named = {"interior": [w * x], "w": [w]}
        args = {k: named.get(v, v) if isinstance(v, str) else v for k, v in kwargs.items()}
        with pytest.raises(error) as info:
            Tape(root, **args)
        assert message in str(info.value)
        messages.append(str(info.value).replace("micrograd._engine", "micrograd.pure"))
    assert messages[0] == messages[1]  # a Value's repr is the same on both engines


def test_a_param_that_is_also_a_constant_is_refused(engine):
    root, w, x, c = small_graph(engine)
    with pytest.raises(ValueError, match=r"also in constants: a constant gets no grad"):
        Tape(root, params=[x, w], constants=[w])


def test_a_value_of_the_other_engine_is_refused(both_engines):
    pure, compiled = both_engines
    root, w, x, c = small_graph(compiled)
    with pytest.raises(TypeError, match=r"Tape params\[0\] must be a Value of the same engine as the root"):
        Tape(root, params=[pure(1.0)])


def test_errors_of_a_forward_are_eagers_with_constants(engine):
    """A constant that makes a node fail fails at every forward, as eager would."""
    x = engine(-1.0)
    w = engine(2.0)
    root = (x * w + 3.0).log()
    tape = Tape(root, params=[w], constants=[x])
    w.data = 4.0  # -1*4 + 3 < 0: log's domain error
    with pytest.raises(ValueError, match="math domain error"):
        tape.forward()
    w.data = 1.0
    assert bits(tape.forward()) == bits(math.log(2.0))
