"""Optional cross-check against PyTorch in float64 (skipped when torch is not installed)."""
import random

import pytest

torch = pytest.importorskip("torch", reason="torch not installed: optional cross-check skipped")


def test_readme_example_against_torch(engine):
    a = torch.tensor([-4.0], dtype=torch.double, requires_grad=True)
    b = torch.tensor([2.0], dtype=torch.double, requires_grad=True)
    ours_a, ours_b = engine(-4.0), engine(2.0)
    results = []
    for x, y, relu in [(a, b, torch.relu), (ours_a, ours_b, lambda t: t.relu())]:
        c = x + y
        d = x * y + y**3
        c = c + c + 1
        c = c + 1 + c + (-x)
        d = d + d * 2 + relu(y + x)
        d = d + 3 * d + relu(y - x)
        e = c - d
        f = e**2
        g = f / 2.0
        g = g + 10.0 / f
        g.backward() if not hasattr(g, "sum") else g.sum().backward()
        results.append(g)
    assert results[1].data == pytest.approx(results[0].item(), rel=1e-12)
    assert ours_a.grad == pytest.approx(a.grad.item(), rel=1e-12)
    assert ours_b.grad == pytest.approx(b.grad.item(), rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_every_op_against_torch(engine, seed):
    rng = random.Random(seed)
    xs = [rng.uniform(0.2, 2.0) for _ in range(3)]
    tx = [torch.tensor(x, dtype=torch.double, requires_grad=True) for x in xs]
    vx = [engine(x) for x in xs]

    def program(a, b, c, relu, tanh, exp, log, sigmoid):
        return (relu(a * b - c) + tanh(a / c) + exp(b - 1) * log(c) + sigmoid(a - b)
                + a ** 2.5 + b ** c + 2 ** c - 3 / a)

    t = program(*tx, torch.relu, torch.tanh, torch.exp, torch.log, torch.sigmoid)
    t.backward()
    v = program(*vx, lambda z: z.relu(), lambda z: z.tanh(), lambda z: z.exp(),
                lambda z: z.log(), lambda z: z.sigmoid())
    v.backward()
    assert v.data == pytest.approx(t.item(), rel=1e-12)
    for ours, theirs in zip(vx, tx):
        assert ours.grad == pytest.approx(theirs.grad.item(), rel=1e-10)


def test_mlp_gradients_against_torch(nn):
    random.seed(7)
    model = nn.MLP(3, [4, 4, 1])
    x = [0.3, -1.2, 0.8]
    out = model(x)
    out.backward()
    # The same network in torch, from the same weights.
    h = torch.tensor(x, dtype=torch.double)
    weights = []
    for li, layer in enumerate(model.layers):
        W = torch.tensor([[w.data for w in n.w] for n in layer.neurons], dtype=torch.double, requires_grad=True)
        B = torch.tensor([n.b.data for n in layer.neurons], dtype=torch.double, requires_grad=True)
        weights.append((W, B))
        h = W @ h + B
        if li != len(model.layers) - 1:
            h = torch.relu(h)
    h.sum().backward()
    assert out.data == pytest.approx(h.item(), rel=1e-12)
    for layer, (W, B) in zip(model.layers, weights):
        for i, n in enumerate(layer.neurons):
            assert [w.grad for w in n.w] == pytest.approx(W.grad[i].tolist(), rel=1e-10, abs=1e-14)
            assert n.b.grad == pytest.approx(B.grad[i].item(), rel=1e-10, abs=1e-14)
