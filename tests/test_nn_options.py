"""nn's options on both engines: activations, initialisation, the engine keyword; defaults stay Karpathy's."""
import math
import random

import pytest

import micrograd.nn


def karpathy_draws(seed, sizes):
    """The weights Karpathy's MLP(sizes[0], sizes[1:]) gets after random.seed(seed): for each
    layer, for each neuron, nin draws of random.uniform(-1, 1), then a bias of 0."""
    random.seed(seed)
    expected = []
    for nin, nout in zip(sizes, sizes[1:]):
        for _ in range(nout):
            expected += [random.uniform(-1, 1) for _ in range(nin)] + [0.0]
    return expected


def set_params(module, values):
    for p, v in zip(module.parameters(), values):
        p.data = v


def test_explicit_defaults_are_karpathys_model(nn):
    random.seed(1337)
    model = nn.MLP(2, [16, 16, 1], activation="relu", output_activation="linear", init="uniform")
    assert [p.data for p in model.parameters()] == karpathy_draws(1337, [2, 16, 16, 1])
    random.seed(1337)
    assert repr(model) == repr(nn.MLP(2, [16, 16, 1]))


@pytest.mark.parametrize(
    "activation, expected",
    [
        ("relu", lambda a: max(a, 0.0)),
        ("tanh", math.tanh),
        ("sigmoid", lambda a: 1.0 / (1.0 + math.exp(-a))),
        ("linear", lambda a: a),
    ],
)
def test_neuron_activation_applies_to_the_affine_sum(nn, activation, expected):
    n = nn.Neuron(2, activation=activation)
    set_params(n, [0.5, -2.0, 0.25])
    for x in ([1.0, 0.5], [1.0, -0.5]):  # pre-activations -0.25 and 1.75
        pre = 0.25 + 0.5 * x[0] + -2.0 * x[1]
        assert n(x).data == pytest.approx(expected(pre), rel=1e-15, abs=0.0)


@pytest.mark.parametrize("activation, name", [("relu", "ReLU"), ("tanh", "Tanh"), ("sigmoid", "Sigmoid"), ("linear", "Linear")])
def test_neuron_repr_names_the_activation(nn, activation, name):
    assert repr(nn.Neuron(3, activation=activation)) == f"{name}Neuron(3)"


def test_tanh_neuron_gradient_is_one_minus_tanh_squared(nn):
    n = nn.Neuron(1, activation="tanh")
    set_params(n, [2.0, 0.5])
    out = n([0.25])  # tanh(1.0)
    out.backward()
    t = math.tanh(1.0)
    assert n.w[0].grad == pytest.approx((1 - t * t) * 0.25, rel=1e-15)
    assert n.b.grad == pytest.approx(1 - t * t, rel=1e-15)


def test_nonlin_flag_still_works_and_reads_back(nn):
    assert nn.Neuron(2).nonlin is True
    linear = nn.Neuron(2, nonlin=False)
    assert linear.nonlin is False and linear.activation == "linear"
    linear.nonlin = True
    assert repr(linear) == "ReLUNeuron(2)"
    with pytest.raises(ValueError, match="contradicts"):
        nn.Neuron(2, nonlin=False, activation="tanh")


def test_unknown_activation_and_wrong_types(nn):
    with pytest.raises(ValueError, match="unknown activation 'gelu'.*'relu', 'tanh', 'sigmoid', 'linear'"):
        nn.Neuron(2, activation="gelu")
    with pytest.raises(TypeError, match="activation must be a str"):
        nn.Neuron(2, activation=len)
    with pytest.raises(ValueError, match="unknown activation"):
        nn.MLP(2, [3, 1], activation=["relu", "elu"])


def test_mlp_hidden_and_output_activations(nn):
    model = nn.MLP(3, [4, 4, 2], activation="tanh", output_activation="sigmoid")
    assert [n.activation for layer in model.layers for n in layer.neurons] == ["tanh"] * 8 + ["sigmoid"] * 2
    assert repr(model.layers[0]) == "Layer of [" + ", ".join(["TanhNeuron(3)"] * 4) + "]"
    assert repr(model.layers[2]) == "Layer of [SigmoidNeuron(4), SigmoidNeuron(4)]"


def test_mlp_activation_list_names_every_layer(nn):
    model = nn.MLP(2, [3, 3, 1], activation=["tanh", "relu", "sigmoid"])
    assert [layer.neurons[0].activation for layer in model.layers] == ["tanh", "relu", "sigmoid"]
    with pytest.raises(ValueError, match="2 names for 3 layers"):
        nn.MLP(2, [3, 3, 1], activation=["tanh", "relu"])
    with pytest.raises(TypeError, match="output_activation"):
        nn.MLP(2, [3, 1], activation=["tanh", "relu"], output_activation="linear")


def test_mlp_forward_matches_a_hand_computation_with_mixed_activations(nn):
    model = nn.MLP(1, [2, 1], activation=["tanh", "sigmoid"])
    # layer 0: w=0.5,b=0 and w=-1,b=0.5; layer 1: w=(1, 2), b=-0.25
    set_params(model, [0.5, 0.0, -1.0, 0.5, 1.0, 2.0, -0.25])
    x = 0.8
    h = [math.tanh(0.5 * x), math.tanh(-1.0 * x + 0.5)]
    expected = 1.0 / (1.0 + math.exp(-(1.0 * h[0] + 2.0 * h[1] - 0.25)))
    assert model([x]).data == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("init, bound", [("he", lambda n: math.sqrt(6.0 / n)), ("lecun", lambda n: math.sqrt(3.0 / n))])
def test_scaled_inits_draw_uniform_within_their_bound(nn, init, bound):
    random.seed(7)
    model = nn.MLP(50, [40, 1], init=init)
    for layer in model.layers:
        nin = len(layer.neurons[0].w)
        ws = [w.data for n in layer.neurons for w in n.w]
        assert max(abs(w) for w in ws) <= bound(nin)
        assert max(abs(w) for w in ws) > 0.9 * bound(nin)  # they fill the range, not a narrower one
        assert all(n.b.data == 0.0 for n in layer.neurons)
    # the draws are uniform(-bound, bound) from the global random stream, in Karpathy's order
    random.seed(7)
    first = [random.uniform(-bound(50), bound(50)) for _ in range(50)]
    assert [w.data for w in model.layers[0].neurons[0].w] == first


def test_init_function_gets_the_fan_in_once_per_weight(nn):
    calls = []

    def init(nin):
        calls.append(nin)
        return 0.5 * len(calls)

    layer = nn.Layer(3, 2, init=init)
    assert calls == [3] * 6
    assert [p.data for p in layer.parameters()] == [0.5, 1.0, 1.5, 0.0, 2.0, 2.5, 3.0, 0.0]


def test_bad_init(nn):
    with pytest.raises(ValueError, match="unknown init 'xavier'"):
        nn.Neuron(2, init="xavier")
    with pytest.raises(TypeError, match="init must be"):
        nn.Neuron(2, init=3)


def test_engine_keyword_picks_the_value_class(nn, engine):
    name = "python" if engine.__module__ == "micrograd.pure" else "cython"
    model = nn.MLP(2, [3, 1], engine=name)
    assert all(type(p) is engine for p in model.parameters())
    assert all(type(p) is engine for p in nn.Neuron(2, engine=engine).parameters())
    with pytest.raises(ValueError, match="engine 'fortran' is not loaded"):
        nn.MLP(2, [1], engine="fortran")
    with pytest.raises(TypeError, match="engine must be"):
        nn.MLP(2, [1], engine=float)


def test_same_seed_same_model_on_both_engines(both_engines):
    models = []
    for name in ("python", "cython"):
        random.seed(3)
        models.append(micrograd.nn.MLP(2, [4, 4, 1], activation="tanh", init="he", engine=name))
    assert [p.data for p in models[0].parameters()] == [p.data for p in models[1].parameters()]
    x = [0.3, -0.7]
    assert models[0](x).data == models[1](x).data
