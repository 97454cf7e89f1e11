"""nn refuses bad configurations and inputs with clear errors, on both engines (issue 11, #17),
while Karpathy's defaults stay bit for bit (tests/test_nn.py, tests/test_readme.py)."""
import json
import math
from decimal import Decimal
from fractions import Fraction

import pytest


@pytest.mark.parametrize(
    "args, kwargs, error, message",
    [
        ((2, [1]), dict(activation="softmax"), ValueError, "unknown activation 'softmax'"),
        ((2, [1]), dict(output_activation="softmax"), ValueError, "unknown activation 'softmax'"),
        ((2, [3, 1]), dict(activation=("tanh", 3)), TypeError, "activation must be a str, not 'int'"),
        ((2, [3, 1]), dict(activation=len), TypeError, "activation must be a name or a list of names"),
        ((2, []), {}, ValueError, "nouts must list at least one layer size"),
        ((2, [-3, 1]), {}, ValueError, r"layer size nouts\[0\] must be at least 1, got -3"),
        ((2, [3, 0]), {}, ValueError, r"layer size nouts\[1\] must be at least 1, got 0"),
        ((0, [1]), {}, ValueError, "nin must be at least 1, got 0"),
        ((True, [1]), {}, TypeError, "nin must be an int, not 'bool'"),
        ((2, [True]), {}, TypeError, r"layer size nouts\[0\] must be an int, not 'bool'"),
        ((2.0, [1]), {}, TypeError, "nin must be an int, not 'float'"),
        ((2, [1.5]), {}, TypeError, r"nouts\[0\] must be an int, not 'float'"),
        ((2, "16"), {}, TypeError, "nouts must be a list of layer sizes, not 'str'"),
        ((2, 16), {}, TypeError, "nouts must be a list of layer sizes, not 'int'"),
    ],
)
def test_mlp_refuses_bad_configurations(nn, args, kwargs, error, message):
    with pytest.raises(error, match=message):
        nn.MLP(*args, **kwargs)


def test_neuron_and_layer_refuse_bad_sizes(nn):
    with pytest.raises(TypeError, match="nin must be an int, not 'bool'"):
        nn.Neuron(False)
    with pytest.raises(ValueError, match="nin must be at least 1, got -1"):
        nn.Neuron(-1)
    with pytest.raises(ValueError, match="nout must be at least 1, got 0"):
        nn.Layer(2, 0)
    with pytest.raises(TypeError, match="nout must be an int, not 'NoneType'"):
        nn.Layer(2, None)


def test_integer_types_and_tuples_are_sizes(nn):
    np = pytest.importorskip("numpy", reason="numpy not installed: NumPy integer sizes not checked")
    model = nn.MLP(np.int64(2), (np.int32(3), 1))
    assert repr(model) == repr(nn.MLP(2, [3, 1]))


@pytest.mark.parametrize("x", [[1.0], [1.0, 2.0, 3.0], []])
def test_wrong_input_length_is_an_error_not_a_truncation(nn, x):
    neuron, layer, model = nn.Neuron(2), nn.Layer(2, 3), nn.MLP(2, [3, 1])
    for module in (neuron, layer, model):
        with pytest.raises(ValueError, match=rf"ReLUNeuron\(2\) takes 2 inputs, got {len(x)}"):
            module(x)


def test_input_must_be_a_sequence(nn, engine):
    with pytest.raises(TypeError, match=r"ReLUNeuron\(1\) takes a sequence of 1 inputs, not 'float'"):
        nn.Neuron(1)(1.0)
    with pytest.raises(TypeError, match="not 'Value'"):
        nn.Neuron(1)(engine(1.0))
    # an iterator is read once, as Karpathy's zip read it
    n = nn.Neuron(2)
    assert n(iter([0.5, -1.0])).data == n([0.5, -1.0]).data


def test_a_hidden_layer_of_one_neuron_feeds_the_next_layer(nn, engine):
    # Karpathy's Layer returns a bare Value for one neuron; the next layer now takes it as [value]
    model = nn.MLP(2, [1, 2, 1])
    for p in model.parameters():
        p.data = 0.5
    hidden = max(0.0, 0.5 + 0.5 * 1.0 + 0.5 * 2.0)
    second = max(0.0, 0.5 + 0.5 * hidden)
    assert model([1.0, 2.0]).data == 0.5 + 0.5 * second + 0.5 * second


# -- load_state_dict validates its numbers like Value(x) does, and names the key ----------------
KEY = "layers.0.neurons.0.b"


def loaded_bias(nn, value):
    model = nn.MLP(2, [1])
    model.load_state_dict(dict(model.state_dict(), **{KEY: value}))
    return model.layers[0].neurons[0].b.data


@pytest.mark.parametrize("value, expected", [(3, 3.0), (0.25, 0.25), (Fraction(1, 4), 0.25), (Decimal("0.1"), 0.1)])
def test_state_numbers_of_any_real_type(nn, value, expected):
    got = loaded_bias(nn, value)
    assert got == expected and type(got) is float


def test_numpy_float32_and_float64_alike(nn):
    np = pytest.importorskip("numpy", reason="numpy not installed: NumPy scalars in a state not checked")
    for value in (np.float32(0.1), np.float64(0.1), np.int64(-7), np.uint8(200)):
        assert loaded_bias(nn, value) == float(value)
    model = nn.MLP(2, [1])
    state = model.state_dict()
    state["layers.0.neurons.0.w"] = [np.float32(0.5), np.float64(-0.25)]
    model.load_state_dict(state)
    assert [w.data for w in model.layers[0].neurons[0].w] == [0.5, -0.25]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_inf_are_refused_and_nothing_changes(nn, value):
    model = nn.MLP(2, [2, 1])
    before = [p.data for p in model.parameters()]
    state = model.state_dict()
    state["layers.1.neurons.0.w"] = [0.5, value]  # late in the dict: nothing may be half loaded
    state[KEY] = 123.0
    with pytest.raises(ValueError, match=r"state\['layers.1.neurons.0.w'\] holds (nan|inf|-inf); parameters must be finite"):
        model.load_state_dict(state)
    assert [p.data for p in model.parameters()] == before


def test_a_number_too_large_for_a_float_names_its_key(nn):
    with pytest.raises(OverflowError, match=r"state\['layers.0.neurons.0.b'\] holds 1000.*int too large"):
        loaded_bias(nn, 10**400)


@pytest.mark.parametrize("value, name", [("0.5", "str"), (True, "bool"), (None, "NoneType"), (1j, "complex"), ([1.0], "list")])
def test_non_numbers_are_refused(nn, value, name):
    with pytest.raises(TypeError, match=rf"state\['{KEY}'\] must hold numbers, not '{name}'"):
        loaded_bias(nn, value)


def test_json_round_trip_still_exact(nn):
    model = nn.MLP(3, [4, 2])
    fresh = nn.MLP(3, [4, 2])
    fresh.load_state_dict(json.loads(json.dumps(model.state_dict())))
    assert [p.data for p in fresh.parameters()] == [p.data for p in model.parameters()]
