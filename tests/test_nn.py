"""Karpathy's nn on both engines: reprs, parameter counts, seeded weights, the training loop."""
import random



def test_reprs(nn):
    model = nn.MLP(2, [16, 16, 1])
    text = repr(model)
    assert text.startswith("MLP of [Layer of [ReLUNeuron(2), ReLUNeuron(2),")
    assert text.endswith("Layer of [LinearNeuron(16)]]")
    assert text.count("ReLUNeuron(2)") == 16 and text.count("ReLUNeuron(16)") == 16


def test_parameter_count_and_types(nn, engine):
    model = nn.MLP(2, [16, 16, 1])
    params = model.parameters()
    assert len(params) == (2 * 16 + 16) + (16 * 16 + 16) + (16 + 1)
    assert all(type(p) is engine for p in params)


def test_seeded_weights_are_karpathys_draws(nn):
    # Karpathy draws w with random.uniform(-1, 1), neuron by neuron, layer by layer, and b = 0.
    random.seed(1337)
    model = nn.MLP(2, [16, 16, 1])
    random.seed(1337)
    expected = []
    for nin, nout in [(2, 16), (16, 16), (16, 1)]:
        for _ in range(nout):
            expected += [random.uniform(-1, 1) for _ in range(nin)] + [0.0]
    assert [p.data for p in model.parameters()] == expected


def test_neuron_forward_is_relu_of_affine(nn, engine):
    n = nn.Neuron(3)
    for p, v in zip(n.parameters(), [0.5, -1.0, 2.0, 0.25]):
        p.data = v
    assert n([1.0, 2.0, 3.0]).data == 0.25 + 0.5 * 1.0 + -1.0 * 2.0 + 2.0 * 3.0
    assert n([1.0, 3.0, 0.0]).data == 0.0  # relu
    linear = nn.Neuron(1, nonlin=False)
    linear.w[0].data, linear.b.data = 2.0, 0.0
    assert linear([-3.0]).data == -6.0 and repr(linear) == "LinearNeuron(1)"


def test_layer_of_one_neuron_returns_a_value(nn, engine):
    assert isinstance(nn.Layer(3, 1)([1.0, 2.0, 3.0]), engine)
    out = nn.Layer(3, 2)([1.0, 2.0, 3.0])
    assert isinstance(out, list) and len(out) == 2


def test_zero_grad_and_one_sgd_step_lowers_the_loss(nn):
    random.seed(0)
    model = nn.MLP(2, [8, 1])
    X = [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]
    y = [1.0, 1.0, -1.0, -1.0]

    def loss():
        return sum(((model(x) - t) ** 2 for x, t in zip(X, y)), 0.0)

    before = loss()
    before.backward()
    assert any(p.grad != 0.0 for p in model.parameters())
    for p in model.parameters():
        p.data -= 0.05 * p.grad
    model.zero_grad()
    assert all(p.grad == 0.0 and type(p.grad) is float for p in model.parameters())
    assert loss().data < before.data


def test_module_base_has_no_parameters(nn):
    assert nn.Module().parameters() == []
