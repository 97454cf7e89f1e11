"""MLP.to_torch() / MLP.from_torch(): the same weights, outputs and gradients in PyTorch, and
back. The tests that need torch skip, saying so, where it is not installed (CI installs
torch==2.13.0); the message for a missing torch is tested everywhere."""
import random
import sys

import pytest

from micrograd.nn import MLP

CONFIGS = {  # name -> MLP(nin, nouts, **kwargs)
    "karpathy": (2, [16, 16, 1], {}),
    "tanh": (3, [8, 8, 1], {"activation": "tanh"}),
    "sigmoid-out": (2, [5, 1], {"activation": "relu", "output_activation": "sigmoid"}),
    "per-layer": (4, [6, 5, 3], {"activation": ["tanh", "sigmoid", "linear"], "init": "lecun"}),
    "one-layer": (3, [2], {"init": "he"}),
}


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="torch not installed: MLP.to_torch/from_torch tests skipped")


def build(nn, config, seed=0):
    nin, nouts, kwargs = CONFIGS[config]
    random.seed(seed)
    return nn.MLP(nin, nouts, **kwargs)


def points(nin, n=7, seed=1):
    rng = random.Random(seed)
    return [[rng.uniform(-2.0, 2.0) for _ in range(nin)] for _ in range(n)]


def as_list(out):
    return out if isinstance(out, list) else [out]


def close(a, b):
    """Equal to float64 rounding: a few ulps of the larger magnitude in the sum."""
    return a == pytest.approx(b, rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_the_same_outputs_and_gradients_in_torch(nn, torch, config):
    model = build(nn, config)
    seq = model.to_torch()
    X = points(CONFIGS[config][0])

    # micrograd: the sum of every output over the batch, then backward
    outputs = [as_list(model(x)) for x in X]
    total = sum((v for row in outputs for v in row), nn.Value(0.0))
    model.zero_grad()
    total.backward()
    # torch: the same
    t_out = seq(torch.tensor(X, dtype=torch.float64))
    t_out.sum().backward()

    assert t_out.dtype == torch.float64 and t_out.shape == (len(X), CONFIGS[config][1][-1])
    for row, t_row in zip(outputs, t_out.tolist()):
        assert all(close(v.data, t) for v, t in zip(row, t_row))
    linears = [m for m in seq if isinstance(m, torch.nn.Linear)]
    assert len(linears) == len(model.layers)
    for layer, linear in zip(model.layers, linears):
        for neuron, w_grad, b_grad in zip(layer.neurons, linear.weight.grad.tolist(), linear.bias.grad.tolist()):
            assert all(close(w.grad, g) for w, g in zip(neuron.w, w_grad))
            assert close(neuron.b.grad, b_grad)


def test_the_sequential_mirrors_the_layers(nn, torch):
    seq = build(nn, "per-layer").to_torch()
    assert [type(m).__name__ for m in seq] == ["Linear", "Tanh", "Linear", "Sigmoid", "Linear"]
    assert [(m.in_features, m.out_features) for m in seq if isinstance(m, torch.nn.Linear)] == [(4, 6), (6, 5), (5, 3)]
    assert all(p.dtype == torch.float64 and p.requires_grad for p in seq.parameters())


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_round_trip_keeps_every_weight_exactly(nn, torch, config):
    model = build(nn, config)
    back = nn.MLP.from_torch(model.to_torch())
    assert back.state_dict() == model.state_dict()  # exact ==, float for float
    assert repr(back) == repr(model)  # the same activations, layer by layer
    assert type(back.parameters()[0]) is type(model.parameters()[0])
    seq = back.to_torch()
    again = nn.MLP.from_torch(seq).to_torch()
    assert all(torch.equal(a, b) for a, b in zip(seq.state_dict().values(), again.state_dict().values()))


def test_from_torch_takes_torchs_own_models(nn, torch):
    torch.manual_seed(0)
    seq = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2), torch.nn.Tanh())  # float32
    state = random.getstate()
    model = nn.MLP.from_torch(seq)
    assert random.getstate() == state  # no draws from the user's random stream
    assert repr(model) == "MLP of [Layer of [ReLUNeuron(3), ReLUNeuron(3), ReLUNeuron(3), ReLUNeuron(3)], Layer of [TanhNeuron(4), TanhNeuron(4)]]"
    assert [w.data for w in model.layers[0].neurons[1].w] == seq[0].weight[1].double().tolist()  # float32 -> float64 is exact
    x = [0.5, -1.0, 2.0]
    expected = seq.double()(torch.tensor([x], dtype=torch.float64))[0].tolist()
    assert all(close(v.data, t) for v, t in zip(model(x), expected))


def test_from_torch_builds_on_the_engine_asked_for(both_engines, torch):
    pure, compiled = both_engines
    seq = torch.nn.Sequential(torch.nn.Linear(2, 1, dtype=torch.float64))
    assert type(MLP.from_torch(seq, engine="python").parameters()[0]) is pure
    assert type(MLP.from_torch(seq, engine=compiled).parameters()[0]) is compiled


def bad_sequentials(torch):
    nn = torch.nn
    return [
        (nn.Linear(2, 3), TypeError, "from_torch takes a torch.nn.Sequential, not 'Linear'"),
        (nn.Sequential(), ValueError, "holds no Linear layer"),
        (nn.Sequential(nn.Linear(2, 3, bias=False)), ValueError, "module 0 is a Linear without bias"),
        (nn.Sequential(nn.Linear(2, 3), nn.LeakyReLU()), ValueError, "module 1 is LeakyReLU; micrograd's MLP has only Linear layers"),
        (nn.Sequential(nn.ReLU(), nn.Linear(2, 3)), ValueError, "module 0 (ReLU) does not follow a Linear layer"),
        (nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Tanh()), ValueError, "module 2 (Tanh) does not follow a Linear layer"),
        (nn.Sequential(nn.Linear(2, 3), nn.Linear(4, 1)), ValueError, "module 1 takes 4 inputs but the layer before it gives 3"),
        (nn.Sequential(nn.Sequential(nn.Linear(2, 3))), ValueError, "module 0 is Sequential"),
    ]


def test_from_torch_rejects_what_an_mlp_cannot_be(torch):
    for seq, error, message in bad_sequentials(torch):
        with pytest.raises(error) as exc:
            MLP.from_torch(seq)
        assert message in str(exc.value)


def test_to_torch_rejects_a_layer_with_mixed_activations(nn, torch):
    model = build(nn, "karpathy")
    model.layers[1].neurons[3].activation = "tanh"
    with pytest.raises(ValueError, match=r"layer 1 mixes activations \['relu', 'tanh'\]"):
        model.to_torch()


def test_without_torch_the_error_says_what_to_install(nn, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail, installed or not
    for call in (lambda: build(nn, "karpathy").to_torch(), lambda: nn.MLP.from_torch(object())):
        with pytest.raises(ImportError) as exc:
            call()
        assert "needs PyTorch: pip install torch==2.13.0" in str(exc.value)
        assert "--index-url https://download.pytorch.org/whl/cpu" in str(exc.value)
