"""Value on each engine: Karpathy's examples, every op against finite differences, bad input."""
import math
import pickle

import pytest

from micrograd import _ops

# One builder per op of the table: an op the table has but no builder (or the reverse) fails
# test_every_op_has_a_builder, and a builder an engine cannot run fails the tests below.
UNARY = {
    "relu": lambda a: a.relu(),
    "tanh": lambda a: a.tanh(),
    "exp": lambda a: a.exp(),
    "log": lambda a: a.log(),
    "sigmoid": lambda a: a.sigmoid(),
    "abs": lambda a: a.abs(),
    "powc": lambda a: a**3,
}
BINARY = {
    "add": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "pow": lambda a, b: a**b,
}


def test_every_op_has_a_builder():
    assert set(UNARY) | set(BINARY) == {op.name for op in _ops.OPS if op.name != "leaf"}


def test_readme_example(engine):
    # karpathy/micrograd's README example and the numbers it prints.
    Value = engine
    a = Value(-4.0)
    b = Value(2.0)
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    assert f"{g.data:.4f}" == "24.7041"
    g.backward()
    assert f"{a.grad:.4f}" == "138.8338"
    assert f"{b.grad:.4f}" == "645.5773"


def lecture_neuron(Value):
    x1 = Value(2.0, label="x1")
    x2 = Value(0.0, label="x2")
    w1 = Value(-3.0, label="w1")
    w2 = Value(1.0, label="w2")
    b = Value(6.8813735870195432, label="b")
    x1w1 = x1 * w1; x1w1.label = "x1*w1"
    x2w2 = x2 * w2; x2w2.label = "x2*w2"
    x1w1x2w2 = x1w1 + x2w2; x1w1x2w2.label = "x1*w1 + x2*w2"
    n = x1w1x2w2 + b; n.label = "n"
    o = n.tanh(); o.label = "o"
    return o, dict(x1=x1, x2=x2, w1=w1, w2=w2, b=b, n=n)


def test_lecture_tanh_neuron(engine):
    # The lecture's numbers: o = 0.7071, do/dn = 1 - o**2 = 0.5, and the grads derived from it.
    o, v = lecture_neuron(engine)
    o.backward()
    assert o.data == pytest.approx(math.sqrt(0.5), abs=1e-12)
    assert v["n"].grad == pytest.approx(0.5, abs=1e-12)
    assert v["x1"].grad == pytest.approx(-1.5, abs=1e-12)  # w1 * 0.5
    assert v["w1"].grad == pytest.approx(1.0, abs=1e-12)  # x1 * 0.5
    assert v["x2"].grad == pytest.approx(0.5, abs=1e-12)
    assert v["w2"].grad == 0.0
    assert o._op == "tanh" and v["n"]._op == "+"


def test_lecture_manual_backward_with_underscore_backward(engine):
    # The lecture steps backprop by hand: o.grad = 1, then o._backward(), n._backward(), ...
    o, v = lecture_neuron(engine)
    o.grad = 1.0
    o._backward()
    n = v["n"]
    assert n.grad == pytest.approx(0.5, abs=1e-12)
    n._backward()
    x1w1x2w2, b = n._prev
    assert b.grad == n.grad and x1w1x2w2.grad == n.grad
    x1w1x2w2._backward()
    for node in x1w1x2w2._prev:
        node._backward()
    assert v["x1"].grad == pytest.approx(-1.5, abs=1e-12)
    assert v["w2"].grad == 0.0
    v["x1"]._backward()  # a leaf's step does nothing
    assert v["x1"].grad == pytest.approx(-1.5, abs=1e-12)


def central_difference(f, x, h=1e-6):
    return (f(x + h) - f(x - h)) / (2 * h)


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("x", [-1.7, -0.3, 0.4, 2.5])
def test_unary_op_against_finite_differences(engine, name, x):
    if name == "log" and x <= 0:
        x = -x
    if name == "relu" and abs(x) < 1e-3:
        pytest.fail("relu has no derivative at 0; choose another point")
    op = UNARY[name]
    a = engine(x)
    out = op(a)
    out.backward()
    numeric = central_difference(lambda t: op(engine(t)).data, x)
    assert a.grad == pytest.approx(numeric, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("x,y", [(1.3, -0.7), (0.6, 2.1), (2.0, 0.5)])
def test_binary_op_against_finite_differences(engine, name, x, y):
    op = BINARY[name]
    a, b = engine(x), engine(y)
    op(a, b).backward()
    da = central_difference(lambda t: op(engine(t), engine(y)).data, x)
    db = central_difference(lambda t: op(engine(x), engine(t)).data, y)
    assert a.grad == pytest.approx(da, rel=1e-6, abs=1e-8)
    assert b.grad == pytest.approx(db, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize(
    "expr",
    [
        lambda a, b: a - b, lambda a, b: a / b, lambda a, b: -a * b, lambda a, b: 2 - a * b,
        lambda a, b: 3 / (a * b), lambda a, b: 2**a + b, lambda a, b: (a + 1) ** 0.5 * b,
        lambda a, b: a**-2 + b**-1,
    ],
)
def test_composite_ops_against_finite_differences(engine, expr):
    x, y = 1.7, -2.3
    a, b = engine(x), engine(y)
    expr(a, b).backward()
    assert a.grad == pytest.approx(central_difference(lambda t: expr(engine(t), engine(y)).data, x), rel=1e-6)
    assert b.grad == pytest.approx(central_difference(lambda t: expr(engine(x), engine(t)).data, y), rel=1e-6)


def test_reflected_forms_match_python_arithmetic(engine):
    v = engine(4.0)
    assert (1 - v).data == 1 - 4.0
    assert (2 / v).data == 2 * 4.0**-1
    assert (2**v).data == 2.0**4.0
    assert (3 * v).data == 12.0 and (3 + v).data == 7.0
    assert (-v).data == -4.0 and (v - 1).data == 3.0 and (v / 2).data == 2.0


def test_op_symbols(engine):
    a, b = engine(2.0), engine(3.0)
    assert (a + b)._op == "+" and (a * b)._op == "*"
    assert (a**2)._op == "**2" and (a**-1)._op == "**-1" and (a**0.5)._op == "**0.5"
    assert (a**b)._op == "**" and a.relu()._op == "ReLU" and a._op == ""
    assert a.exp()._op == "exp" and a.log()._op == "log" and a.sigmoid()._op == "sigmoid"
    assert a.abs()._op == "abs" and abs(a)._op == "abs"


@pytest.mark.parametrize("x, data, grad", [(-2.5, 2.5, -1.0), (3.0, 3.0, 1.0), (0.0, 0.0, 0.0), (-0.0, 0.0, 0.0)])
def test_abs_and_its_gradient_at_zero(engine, x, data, grad):
    # d|a|/da is sign(a), and 0 at a == 0, as PyTorch chooses (0 is a subgradient there).
    a = engine(x)
    out = abs(a)
    out.backward()
    assert (out.data, math.copysign(1.0, out.data)) == (data, 1.0)
    assert a.grad == grad


def test_prev_is_an_ordered_tuple(engine):
    a, b = engine(2.0), engine(3.0)
    assert (a + b)._prev == (a, b)
    assert (b * a)._prev == (b, a)
    assert (a * a)._prev == (a, a)
    assert a.relu()._prev == (a,) and a._prev == ()


def test_backward_semantics(engine):
    # The root's grad is set to 1 (not added), and grads accumulate across calls.
    a = engine(3.0)
    out = a * a
    out.backward()
    assert a.grad == 6.0 and out.grad == 1.0
    out.backward()
    assert a.grad == 12.0 and out.grad == 1.0
    leaf = engine(5.0)
    leaf.backward()
    assert leaf.grad == 1.0


def test_data_and_grad_are_floats_and_settable(engine):
    v = engine(3)
    assert type(v.data) is float and type(v.grad) is float
    v.data = 7
    v.grad = True
    assert type(v.data) is float and v.data == 7.0 and v.grad == 1.0
    assert type((engine(1) + 2).data) is float


def test_accepts_anything_with_float(engine):
    from decimal import Decimal
    from fractions import Fraction

    assert engine(Fraction(1, 4)).data == 0.25
    assert engine(Decimal("1.5")).data == 1.5
    assert (engine(1.0) + Fraction(1, 2)).data == 1.5
    np = pytest.importorskip("numpy", reason="numpy not installed: NumPy scalars untested")
    assert engine(np.float64(2.5)).data == 2.5 and type(engine(np.float32(0.5)).data) is float


def test_repr_and_label(engine):
    v = engine(2.0)
    assert repr(v) == "Value(data=2.0, grad=0.0)"
    w = engine(-1.5, label="w")
    assert w.label == "w" and repr(w) == "Value(data=-1.5, grad=0.0, label='w')"
    v.label = "v"
    assert v.label == "v"
    assert engine(1.0).label == ""


def test_karpathy_style_manual_node_does_nothing_until_given_a_backward(engine):
    # As in Karpathy's engine, a node built by hand has no rule of its own, whatever its _op says.
    a, b = engine(2.0), engine(5.0)
    out = engine(a.data * b.data, (a, b), "*")
    out.backward()
    assert (a.grad, b.grad) == (0.0, 0.0) and out._op == "*" and out._prev == (a, b)

    def _backward():
        a.grad += b.data * out.grad
        b.grad += a.data * out.grad

    out._backward = _backward
    assert out._backward is _backward
    out.backward()
    assert (a.grad, b.grad) == (5.0, 2.0)


@pytest.mark.parametrize(
    "make, typename",
    [
        (lambda V: V("a"), "str"),
        (lambda V: V(None), "NoneType"),
        (lambda V: V([1.0]), "list"),
        (lambda V: V(1.0) + "a", "str"),
        (lambda V: "a" + V(1.0), "Value"),
        (lambda V: V(1.0) * None, "NoneType"),
        (lambda V: None * V(1.0), "NoneType"),
        (lambda V: V(1.0) - "a", "str"),
        (lambda V: "a" - V(1.0), "str"),
        (lambda V: V(1.0) / "a", "str"),
        (lambda V: "a" / V(1.0), "str"),
        (lambda V: V(1.0) ** "a", "str"),
        (lambda V: "a" ** V(1.0), "str"),
        (lambda V: V(1.0, label=3), "int"),
        (lambda V: V(1.0, ("x",), "relu"), "str"),
    ],
)
def test_bad_input_raises_type_error_naming_the_type(both_engines, make, typename):
    messages = []
    for Value in both_engines:
        with pytest.raises(TypeError) as info:
            make(Value)
        assert typename in str(info.value)
        # Python writes the operator errors itself, naming the compiled (static) type by its
        # qualified name: the one difference allowed between the engines' messages.
        messages.append(str(info.value).replace("micrograd._engine.Value", "Value"))
    assert messages[0] == messages[1]


def test_setting_bad_data_raises_type_error(engine):
    v = engine(1.0)
    with pytest.raises(TypeError, match="str"):
        v.data = "1.0"
    with pytest.raises(TypeError, match="NoneType"):
        v.grad = None
    with pytest.raises(TypeError, match="int"):
        v.label = 5
    assert v.data == 1.0 and v.grad == 0.0


@pytest.mark.parametrize(
    "make, exc, words",
    [
        (lambda V: V(0.0).log(), ValueError, ["log", "0.0"]),
        (lambda V: V(-2.0).log(), ValueError, ["log", "-2.0"]),
        (lambda V: V(1000.0).exp(), OverflowError, ["exp", "1000.0"]),
        (lambda V: V(0.0) ** -1, ZeroDivisionError, ["**", "0.0"]),
        (lambda V: 1 / V(0.0), ZeroDivisionError, ["**", "0.0"]),
        (lambda V: V(1.0) / V(0.0), ZeroDivisionError, ["**", "0.0"]),
        (lambda V: V(-8.0) ** (1 / 3), ValueError, ["**", "-8.0", "fractional"]),
        (lambda V: V(-8.0) ** V(0.5), ValueError, ["**", "-8.0"]),
        (lambda V: V(10.0) ** 400, OverflowError, ["**", "10.0"]),
        (lambda V: 10.0 ** V(400.0), OverflowError, ["**", "400.0"]),
        (lambda V: V(1.0) + 10**400, OverflowError, ["int"]),
        (lambda V: V(1.0, (V(2.0),), (1.0, 2.0)), ValueError, ["2 numbers for 1 children"]),
    ],
)
def test_math_errors_are_pythons_and_identical_in_both_engines(both_engines, make, exc, words):
    messages = []
    for Value in both_engines:
        with pytest.raises(exc) as info:
            make(Value)
        for word in words:
            assert word in str(info.value)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_no_error_where_python_has_none(engine):
    # Multiplying into overflow gives inf in Python, so it does here; negative ** integer is fine.
    assert (engine(1e200) * 1e200).data == math.inf
    assert (engine(-2.0) ** 3).data == -8.0
    assert (engine(0.0) ** 0).data == 1.0
    assert engine(-1000.0).sigmoid().data == 0.0 and engine(1000.0).sigmoid().data == 1.0
    assert engine(-800.0).exp().data == 0.0


def test_backward_never_raises_and_gives_ieee_values(engine):
    # d/dx sqrt(x) at 0 is +inf; d/dx log(x) after the input was moved to 0 is inf.
    x = engine(0.0)
    (x**0.5).backward()
    assert x.grad == math.inf
    y = engine(2.0)
    out = y.log()
    y.data = 0.0
    out.backward()
    assert y.grad == math.inf


def test_hash_and_equality_are_identity(engine):
    a, b = engine(1.0), engine(1.0)
    assert a != b and a == a and len({a, b, a}) == 2


def test_pickle_gives_a_leaf(engine):
    v = engine(2.5, label="w")
    v.grad = -1.0
    w = pickle.loads(pickle.dumps((v * 2)._prev[0]))
    assert (w.data, w.grad, w.label, w._prev) == (2.5, -1.0, "w", ())


def test_same_object_model_in_both_engines(both_engines):
    # Neither engine's Value takes weak references or new attributes (the compiled node has no
    # room for them, and the pure one is kept alike rather than 8 bytes a node heavier).
    import weakref

    for Value in both_engines:
        v = Value(1.0)
        with pytest.raises(TypeError):
            weakref.ref(v)
        with pytest.raises(AttributeError):
            v.extra = 1
