"""Optimizers on both engines: hand-derived updates, errors, saved state, and (when torch is
installed) the same numbers as torch.optim on the same parameters and gradients."""
import json
import math
import random

import pytest

from micrograd import optim


def params_with(engine, values):
    return [engine(v) for v in values]


def run(opt, params, grads):
    """Apply one step per entry of ``grads`` (a list of per-parameter gradients)."""
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g
        opt.step()
    return [p.data for p in params]


# -- SGD: numbers chosen so that every operation is exact in binary floating point -------------
def test_sgd_plain_is_p_minus_lr_grad(engine):
    p = params_with(engine, [1.0, -2.0])
    assert run(optim.SGD(p, lr=0.5), p, [[2.0, -1.0]]) == [0.0, -1.5]


def test_sgd_momentum_first_step_takes_the_grad_then_accumulates(engine):
    # buf1 = g1 = 1; p1 = 1 - 0.25*1 = 0.75; buf2 = 0.5*1 + 2 = 2.5; p2 = 0.75 - 0.25*2.5 = 0.125
    p = params_with(engine, [1.0])
    assert run(optim.SGD(p, lr=0.25, momentum=0.5), p, [[1.0], [2.0]]) == [0.125]


def test_sgd_dampening_scales_new_grads_but_not_the_first(engine):
    # buf1 = 1 (no dampening on the first step, as torch); buf2 = 0.5*1 + 0.5*2 = 1.5; p2 = 0.75 - 0.375
    p = params_with(engine, [1.0])
    assert run(optim.SGD(p, lr=0.25, momentum=0.5, dampening=0.5), p, [[1.0], [2.0]]) == [0.375]


def test_sgd_nesterov_looks_ahead(engine):
    # step 1: buf = 1, g = 1 + 0.5*1 = 1.5, p = 1 - 0.375 = 0.625
    # step 2: buf = 0.5 + 2 = 2.5, g = 2 + 1.25 = 3.25, p = 0.625 - 0.8125 = -0.1875
    p = params_with(engine, [1.0])
    assert run(optim.SGD(p, lr=0.25, momentum=0.5, nesterov=True), p, [[1.0], [2.0]]) == [-0.1875]


def test_sgd_weight_decay_and_maximize(engine):
    p = params_with(engine, [1.0])
    assert run(optim.SGD(p, lr=0.25, weight_decay=0.5), p, [[1.0]]) == [1.0 - 0.25 * (1.0 + 0.5 * 1.0)]
    q = params_with(engine, [1.0])
    assert run(optim.SGD(q, lr=0.25, maximize=True), q, [[1.0]]) == [1.25]


def test_sgd_step_is_karpathys_update_bit_for_bit(engine):
    rng = random.Random(5)
    values = [rng.uniform(-1, 1) for _ in range(50)]
    grads = [rng.gauss(0, 1) for _ in range(50)]
    p = params_with(engine, values)
    run(optim.SGD(p, lr=0.37), p, [grads])
    assert [x.data for x in p] == [v - 0.37 * g for v, g in zip(values, grads)]


def test_learning_rate_can_change_between_steps(engine):
    p = params_with(engine, [1.0])
    opt = optim.SGD(p, lr=0.5)
    run(opt, p, [[1.0]])
    opt.lr = 0.25
    assert run(opt, p, [[1.0]]) == [0.25]


# -- Adam ---------------------------------------------------------------------------------------
def test_adam_constant_gradient_moves_lr_per_step(engine):
    # With a constant gradient g the bias-corrected moments are exactly g and g*g, so every
    # step is lr * g / (|g| + eps).
    p = params_with(engine, [1.0, -3.0])
    lr, eps = 0.01, 1e-8
    final = run(optim.Adam(p, lr=lr, eps=eps), p, [[2.0, -0.5]] * 10)
    assert final[0] == pytest.approx(1.0 - 10 * lr * 2.0 / (2.0 + eps), rel=1e-12)
    assert final[1] == pytest.approx(-3.0 + 10 * lr * 0.5 / (0.5 + eps), rel=1e-12)


def adam_reference(p, grads, lr, b1, b2, eps, amsgrad=False):
    """Adam as Kingma & Ba write it (with torch's eps placement), in plain math."""
    m = v = v_max = 0.0
    for t, g in enumerate(grads, 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        v_max = max(v_max, v)
        m_hat = m / (1 - b1**t)
        v_hat = (v_max if amsgrad else v) / (1 - b2**t)
        p = p - lr * m_hat / (math.sqrt(v_hat) + eps)
    return p


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_matches_the_papers_formula(engine, amsgrad):
    grads = [2.0, 0.0, -1.0, 0.5, 0.0]  # a falling second moment, where amsgrad differs
    p = params_with(engine, [1.0])
    final = run(optim.Adam(p, lr=0.25, betas=(0.5, 0.75), eps=0.5, amsgrad=amsgrad), p, [[g] for g in grads])
    expected = adam_reference(1.0, grads, 0.25, 0.5, 0.75, 0.5, amsgrad)
    assert final[0] == pytest.approx(expected, rel=1e-13)
    other = adam_reference(1.0, grads, 0.25, 0.5, 0.75, 0.5, not amsgrad)
    assert abs(expected - other) > 1e-3  # the two variants really are told apart


def test_adam_weight_decay_is_l2_and_adamw_decouples_it(engine):
    # With a zero gradient, AdamW only shrinks p by (1 - lr*wd) each step, while Adam's L2 term
    # becomes the gradient wd*p and moves p by about lr.
    p = params_with(engine, [2.0])
    assert run(optim.AdamW(p, lr=0.25, weight_decay=0.5), p, [[0.0], [0.0]]) == [2.0 * 0.875 * 0.875]
    q = params_with(engine, [2.0])
    assert run(optim.Adam(q, lr=0.25, weight_decay=0.5), q, [[0.0]])[0] == pytest.approx(1.75, rel=1e-7)
    assert optim.AdamW(params_with(engine, [1.0])).weight_decay == 0.01  # torch's default


def test_adam_maximize_climbs(engine):
    p = params_with(engine, [0.0])
    assert run(optim.Adam(p, lr=0.1, maximize=True), p, [[1.0]])[0] == pytest.approx(0.1, rel=1e-7)


# -- common behaviour --------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [optim.SGD, optim.Adam, optim.AdamW])
def test_zero_grad_clears_every_grad(engine, cls):
    p = params_with(engine, [1.0, 2.0])
    for x in p:
        x.grad = 3.0
    cls(p).zero_grad()
    assert [x.grad for x in p] == [0.0, 0.0]


def test_works_on_a_model_and_lowers_its_loss(nn):
    random.seed(2)
    model = nn.MLP(2, [4, 1])
    X, y = [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]], [1.0, 1.0, -1.0, -1.0]
    opt = optim.Adam(model.parameters(), lr=0.05)

    def loss():
        return sum((model(x) - t) ** 2 for x, t in zip(X, y))

    first = loss().data
    for _ in range(20):
        total = loss()
        opt.zero_grad()
        total.backward()
        opt.step()
    assert loss().data < first


def test_bad_arguments(engine):
    p = params_with(engine, [1.0])
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([])
    with pytest.raises(TypeError, match="must be micrograd Values, not 'float'"):
        optim.SGD([1.0])
    with pytest.raises(TypeError, match="iterable of Values"):
        optim.Adam(p[0])
    with pytest.raises(ValueError, match="appears more than once"):
        optim.SGD(p + p)
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        optim.SGD(p, lr=-1)
    with pytest.raises(TypeError, match="learning rate must be a number"):
        optim.Adam(p, lr="0.1")
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum and zero dampening"):
        optim.SGD(p, momentum=0.0, nesterov=True)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1: 1.0"):
        optim.Adam(p, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Invalid epsilon value"):
        optim.Adam(p, eps=-1e-8)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
        lambda p: optim.Adam(p, lr=0.01, amsgrad=True),
        lambda p: optim.AdamW(p, lr=0.01),
    ],
    ids=["sgd", "adam", "adamw"],
)
def test_state_dict_resumes_exactly_through_json(engine, make):
    rng = random.Random(9)
    values = [rng.uniform(-1, 1) for _ in range(4)]
    grads = [[rng.gauss(0, 1) for _ in values] for _ in range(5)]

    p = params_with(engine, values)
    uninterrupted = run(make(p), p, grads)

    q = params_with(engine, values)
    first = make(q)
    run(first, q, grads[:3])
    saved = json.loads(json.dumps(first.state_dict()))
    resumed = make(q)
    resumed.load_state_dict(saved)
    assert run(resumed, q, grads[3:]) == uninterrupted

    with pytest.raises(ValueError, match="state must have the keys"):
        resumed.load_state_dict({"lr": 0.1})
    too_many = params_with(engine, values + [0.0])
    with pytest.raises(ValueError, match="entries for 5 parameters"):
        make(too_many).load_state_dict(saved)


def test_repr_shows_the_settings(engine):
    text = repr(optim.SGD(params_with(engine, [1.0, 2.0]), lr=0.1, momentum=0.9))
    assert text.startswith("SGD(2 parameters, lr=0.1, momentum=0.9,")


# -- cross-check against torch.optim (optional) ----------------------------------------------------
@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch", reason="torch not installed: optional cross-check against torch.optim skipped")


TORCH_CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, amsgrad=True, maximize=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.02, betas=(0.3, 0.6), weight_decay=0.5, amsgrad=True)),
]


@pytest.mark.parametrize("name, kwargs", TORCH_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(TORCH_CASES)])
def test_same_numbers_as_torch_optim(engine, torch, name, kwargs):
    """Each parameter is a float64 scalar tensor on torch's side; both get the same gradients
    for 25 steps. PyTorch rounds a + alpha*b once (FMA) where Python rounds twice, so the
    results agree to about 1e-15 relative, not always to the last bit."""
    rng = random.Random(4)
    values = [rng.uniform(-2, 2) for _ in range(40)]
    grads = [[rng.gauss(0, 1) * 10 ** rng.uniform(-3, 1) for _ in values] for _ in range(25)]

    ours = params_with(engine, values)
    opt = getattr(optim, name)(ours, **kwargs)
    theirs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
    reference = getattr(torch.optim, name)(theirs, **kwargs)
    for step_grads in grads:
        for p, t, g in zip(ours, theirs, step_grads):
            p.grad = g
            t.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        reference.step()
        for p, t in zip(ours, theirs):
            assert p.data == pytest.approx(t.item(), rel=1e-12, abs=1e-14)


def test_bit_identical_to_torch_when_no_step_rounds(engine, torch):
    # Powers of two: every product and sum is exact, so fused or not, the results must match.
    values, grads = [1.0, -0.5, 0.25], [[0.5, 1.0, -2.0], [0.25, -0.5, 1.0], [1.0, 0.125, 0.5]]
    ours = params_with(engine, values)
    opt = optim.SGD(ours, lr=0.5, momentum=0.5, dampening=0.5, weight_decay=0.25, nesterov=False)
    theirs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
    reference = torch.optim.SGD(theirs, lr=0.5, momentum=0.5, dampening=0.5, weight_decay=0.25)
    for step_grads in grads:
        for p, t, g in zip(ours, theirs, step_grads):
            p.grad, t.grad = g, torch.tensor(g, dtype=torch.float64)
        opt.step()
        reference.step()
    assert [p.data for p in ours] == [t.item() for t in theirs]
