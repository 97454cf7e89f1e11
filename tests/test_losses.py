"""Losses and softmax on both engines: values and gradients against hand-derived formulas,
stability for huge logits, Karpathy's demo loss bit for bit, and torch when installed."""
import math

import pytest

from micrograd import losses


def values(engine, xs):
    return [engine(x) for x in xs]


def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


def test_mse_value_and_gradient(engine):
    p = values(engine, [1.0, 2.0, 4.0])
    loss = losses.mse(p, [0.0, 2.0, 2.0])
    assert loss.data == pytest.approx(5.0 / 3.0, rel=1e-15)
    loss.backward()
    assert [x.grad for x in p] == pytest.approx([2.0 / 3.0, 0.0, 4.0 / 3.0], rel=1e-15)


def test_hinge_value_and_gradient(engine):
    s = values(engine, [0.5, -2.0, 3.0])
    loss = losses.hinge(s, [1, -1, -1])  # margins: relu(0.5), relu(-1), relu(4)
    assert loss.data == 4.5 * (1.0 / 3)
    loss.backward()
    assert [x.grad for x in s] == pytest.approx([-1.0 / 3.0, 0.0, 1.0 / 3.0], rel=1e-15)
    assert losses.max_margin is losses.hinge


def test_hinge_and_l2_are_karpathys_expressions_bit_for_bit(engine):
    scores_a = values(engine, [0.3, -1.7, 0.9, 0.1])
    scores_b = values(engine, [0.3, -1.7, 0.9, 0.1])
    params_a = values(engine, [0.25, -0.7, 1.3])
    params_b = values(engine, [0.25, -0.7, 1.3])
    y = [1, -1, -1, 1]
    ours = losses.hinge(scores_a, y) + losses.l2(params_a, 1e-4)
    # karpathy/micrograd demo.ipynb, loss():
    karpathy_losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(y, scores_b)]
    data_loss = sum(karpathy_losses) * (1.0 / len(karpathy_losses))
    reg_loss = 1e-4 * sum((p * p for p in params_b))
    theirs = data_loss + reg_loss
    assert ours.data == theirs.data
    ours.backward()
    theirs.backward()
    assert [x.grad for x in scores_a + params_a] == [x.grad for x in scores_b + params_b]


def test_l2_gradient_is_two_alpha_p(engine):
    p = values(engine, [0.5, -2.0])
    loss = losses.l2(p, 0.25)
    assert loss.data == 0.25 * (0.25 + 4.0)
    loss.backward()
    assert [x.grad for x in p] == [0.25, -1.0]


@pytest.mark.parametrize("z", [-30.0, -3.0, -0.5, 0.0, 0.5, 3.0, 30.0])
def test_softplus_value_and_gradient_is_sigmoid(engine, z):
    x = engine(z)
    out = losses.softplus(x)
    assert out.data == pytest.approx(math.log1p(math.exp(z)), rel=1e-15, abs=1e-15)
    out.backward()
    assert x.grad == pytest.approx(sigmoid(z), rel=1e-14, abs=1e-15)


@pytest.mark.parametrize("z, t", [(800.0, 0.0), (-800.0, 1.0), (800.0, 1.0), (-800.0, 0.0), (1e6, 0.0)])
def test_binary_cross_entropy_does_not_overflow(engine, z, t):
    x = engine(z)
    loss = losses.binary_cross_entropy_with_logits([x], [t])
    # softplus(z) - t*z: for huge z it is (1 - t) * z; for hugely negative z it is -t * z
    expected = (1 - t) * z if z > 0 else -t * z
    assert loss.data == expected
    loss.backward()
    assert x.grad == (1.0 - t if z > 0 else -t)  # sigmoid(z) - t, with sigmoid saturated


def test_binary_cross_entropy_value_and_gradient(engine):
    zs = values(engine, [-1.5, 0.0, 2.0])
    ts = [1, 0.25, 0]
    loss = losses.binary_cross_entropy_with_logits(zs, ts)
    expected = sum(-t * math.log(sigmoid(z)) - (1 - t) * math.log(1 - sigmoid(z)) for z, t in zip([-1.5, 0.0, 2.0], ts)) / 3
    assert loss.data == pytest.approx(expected, rel=1e-14)
    loss.backward()
    # d/dz = (sigmoid(z) - t) / n, and at z = 0 exactly 0.5 - t
    assert [z.grad for z in zs] == pytest.approx([(sigmoid(-1.5) - 1) / 3, (0.5 - 0.25) / 3, sigmoid(2.0) / 3], rel=1e-14)


def test_binary_cross_entropy_rejects_labels_outside_0_1(engine):
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 1\], got -1.*\(y \+ 1\) / 2"):
        losses.binary_cross_entropy_with_logits([engine(0.0)], [-1])


def test_logsumexp_softmax_and_log_softmax(engine):
    zs = [0.5, -1.0, 2.0]
    lse = math.log(sum(math.exp(z) for z in zs))
    expected = [math.exp(z) / sum(math.exp(w) for w in zs) for z in zs]
    assert losses.logsumexp(values(engine, zs)).data == pytest.approx(lse, rel=1e-15)
    assert [s.data for s in losses.softmax(values(engine, zs))] == pytest.approx(expected, rel=1e-15)
    assert [s.data for s in losses.log_softmax(values(engine, zs))] == pytest.approx([z - lse for z in zs], rel=1e-15)

    # the gradient of logsumexp is the softmax; of softmax[0]: s0 * (delta_0j - s_j)
    x = values(engine, zs)
    losses.logsumexp(x).backward()
    assert [v.grad for v in x] == pytest.approx(expected, rel=1e-14)
    x = values(engine, zs)
    losses.softmax(x)[0].backward()
    s = expected
    assert [v.grad for v in x] == pytest.approx([s[0] * (1 - s[0]), -s[0] * s[1], -s[0] * s[2]], rel=1e-13)


def test_huge_logits_stay_finite(engine):
    x = values(engine, [1000.0, 1000.0, -1000.0])
    lse = losses.logsumexp(x)
    assert lse.data == pytest.approx(1000.0 + math.log(2.0), rel=1e-15)
    assert [s.data for s in losses.softmax(values(engine, [1000.0, 1000.0, -1000.0]))] == [0.5, 0.5, 0.0]
    lse.backward()
    assert [v.grad for v in x] == [0.5, 0.5, 0.0]


def test_cross_entropy_value_and_gradient(engine):
    rows = [values(engine, [2.0, 1.0, 0.1]), values(engine, [0.0, 0.0, 3.0])]
    targets = [0, 1]
    loss = losses.cross_entropy(rows, targets)
    expected = 0.0
    for zs, t in zip([[2.0, 1.0, 0.1], [0.0, 0.0, 3.0]], targets):
        expected += -math.log(math.exp(zs[t]) / sum(math.exp(z) for z in zs)) / 2
    assert loss.data == pytest.approx(expected, rel=1e-14)
    loss.backward()
    for zs, row, t in zip([[2.0, 1.0, 0.1], [0.0, 0.0, 3.0]], rows, targets):
        total = sum(math.exp(z) for z in zs)
        wanted = [(math.exp(z) / total - (i == t)) / 2 for i, z in enumerate(zs)]
        assert [v.grad for v in row] == pytest.approx(wanted, rel=1e-13, abs=1e-16)


def test_cross_entropy_target_checks(engine):
    row = values(engine, [0.0, 1.0])
    with pytest.raises(ValueError, match="target 2 is not a class index for 2 logits"):
        losses.cross_entropy([row], [2])
    with pytest.raises(TypeError, match="class indices"):
        losses.cross_entropy([row], [1.0])


def test_batch_checks(engine):
    with pytest.raises(ValueError, match="2 predictions but 1 targets"):
        losses.mse(values(engine, [1.0, 2.0]), [1.0])
    with pytest.raises(ValueError, match="the batch is empty"):
        losses.hinge([], [])
    with pytest.raises(TypeError, match="must be a list"):
        losses.mse(engine(1.0), [1.0])
    with pytest.raises(TypeError, match="softmax takes Values, not 'float'"):
        losses.softmax([1.0, 2.0])
    with pytest.raises(ValueError, match="non-empty"):
        losses.logsumexp([])


def test_both_engines_agree_bit_for_bit(both_engines):
    results = []
    for engine in both_engines:
        rows = [values(engine, [0.3, -1.2, 2.5]), values(engine, [1.0, 0.9, -0.4])]
        logits = values(engine, [-0.7, 1.9])
        total = losses.cross_entropy(rows, [2, 0]) + losses.binary_cross_entropy_with_logits(logits, [1, 0])
        total = total + losses.mse(logits, [0.5, 0.5]) + losses.hinge(logits, [1, -1])
        total.backward()
        results.append([total.data] + [v.grad for v in rows[0] + rows[1] + logits])
    assert results[0] == results[1]


# -- against torch.nn.functional (optional) -------------------------------------------------------
@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch", reason="torch not installed: optional cross-check skipped")


def test_against_torch_functional(engine, torch):
    F = torch.nn.functional
    zs, ts = [-3.0, -0.2, 0.0, 1.7, 40.0], [1.0, 0.0, 0.5, 1.0, 0.0]
    ours = values(engine, zs)
    loss = losses.binary_cross_entropy_with_logits(ours, ts)
    loss.backward()
    theirs = torch.tensor(zs, dtype=torch.float64, requires_grad=True)
    ref = F.binary_cross_entropy_with_logits(theirs, torch.tensor(ts, dtype=torch.float64))
    ref.backward()
    assert loss.data == pytest.approx(ref.item(), rel=1e-14)
    assert [v.grad for v in ours] == pytest.approx(theirs.grad.tolist(), rel=1e-13, abs=1e-17)

    rows = [[0.3, -1.2, 2.5, 300.0], [1.0, 0.9, -0.4, -2.0], [5.0, 5.0, 5.0, 5.0]]
    targets = [3, 0, 2]
    ours_rows = [values(engine, r) for r in rows]
    loss = losses.cross_entropy(ours_rows, targets)
    loss.backward()
    theirs = torch.tensor(rows, dtype=torch.float64, requires_grad=True)
    ref = F.cross_entropy(theirs, torch.tensor(targets))
    ref.backward()
    assert loss.data == pytest.approx(ref.item(), rel=1e-14)
    for row, grads in zip(ours_rows, theirs.grad.tolist()):
        assert [v.grad for v in row] == pytest.approx(grads, rel=1e-13, abs=1e-17)

    probs = losses.softmax(values(engine, rows[1]))
    assert [p.data for p in probs] == pytest.approx(F.softmax(torch.tensor(rows[1], dtype=torch.float64), 0).tolist(), rel=1e-15)
