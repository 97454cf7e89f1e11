"""Optimizers check what they are given, on both engines (issue 11, #18): a step applies
completely or changes nothing, and a loaded state is checked like constructor arguments."""
import json
import math

import pytest

from micrograd import optim


def snapshot(opt):
    """Everything a step may change: the parameters and the optimizer's counters and buffers."""
    buffers = {name: None if getattr(opt, name) is None else list(getattr(opt, name)) for name in opt.buffers}
    counters = {name: getattr(opt, name) for name in opt.counters}
    return [p.data for p in opt.params], [p.grad for p in opt.params], buffers, counters


def stepped(engine, make, steps=2):
    params = [engine(x) for x in (1.0, -2.0, 0.5)]
    opt = make(params)
    for k in range(steps):
        for p, g in zip(params, (0.5, -0.25 * k, 0.0)):
            p.grad = g
        opt.step()
    for p, g in zip(params, (1.0, 2.0, -3.0)):
        p.grad = g
    return opt


MAKERS = {
    "sgd": lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
    "adam": lambda p: optim.Adam(p, lr=0.1, amsgrad=True),
    "adamw": lambda p: optim.AdamW(p, lr=0.1),
}


# -- constructor ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cls, kwargs, error, message",
    [
        (optim.SGD, dict(dampening="x"), TypeError, "dampening must be a number, not 'str'"),
        (optim.SGD, dict(momentum=None), TypeError, "momentum value must be a number, not 'NoneType'"),
        (optim.SGD, dict(nesterov="yes", momentum=0.9), TypeError, "nesterov must be True or False, not 'str'"),
        (optim.SGD, dict(lr=math.nan), ValueError, "Invalid learning rate: nan"),
        (optim.SGD, dict(lr=math.inf), ValueError, r"Invalid learning rate: inf \(must be finite\)"),
        (optim.SGD, dict(lr=True), TypeError, "learning rate must be a number, not 'bool'"),
        (optim.SGD, dict(weight_decay=10**400), OverflowError, "weight_decay value: int too large"),
        (optim.Adam, dict(betas=None), TypeError, r"betas must be a pair of numbers \(beta1, beta2\), not 'NoneType'"),
        (optim.Adam, dict(betas=0.9), TypeError, "betas must be a pair of numbers"),
        (optim.Adam, dict(betas=(0.9,)), ValueError, r"betas must be a pair \(beta1, beta2\), got \(0.9,\)"),
        (optim.Adam, dict(betas=(0.9, "x")), TypeError, "beta parameter at index 1 must be a number, not 'str'"),
        (optim.Adam, dict(betas=(math.nan, 0.9)), ValueError, "Invalid beta parameter at index 0: nan"),
        (optim.Adam, dict(eps=0), ValueError, "Invalid epsilon value: 0; eps must be > 0"),
        (optim.Adam, dict(eps=-0.0), ValueError, "Invalid epsilon value"),
        (optim.Adam, dict(amsgrad=1), TypeError, "amsgrad must be True or False, not 'int'"),
        (optim.AdamW, dict(weight_decay=-1), ValueError, "Invalid weight_decay value: -1"),
        (optim.AdamW, dict(maximize=None), TypeError, "maximize must be True or False"),
    ],
)
def test_bad_constructor_arguments(engine, cls, kwargs, error, message):
    with pytest.raises(error, match=message):
        cls([engine(1.0)], **kwargs)


def test_numbers_of_any_numeric_type_give_the_same_steps(engine):
    np = pytest.importorskip("numpy", reason="numpy not installed: NumPy hyperparameters not checked")
    results = []
    for lr, beta in ((0.1, 0.5), (np.float64(0.1), np.float64(0.5)), (np.float32(0.1), np.float32(0.5))):
        p = [engine(1.0)]
        opt = optim.Adam(p, lr=lr, betas=(beta, 0.75))
        p[0].grad = 0.3
        opt.step()
        results.append(p[0].data)
        assert type(opt.lr) is float and json.dumps(opt.state_dict())
    assert results[0] == results[1]
    p = [engine(1.0)]
    opt = optim.Adam(p, lr=float(np.float32(0.1)), betas=(0.5, 0.75))
    p[0].grad = 0.3
    opt.step()
    assert results[2] == p[0].data  # float32 taken at its exact value, as float() gives it


# -- a step applies completely or changes nothing --------------------------------------------
@pytest.mark.parametrize(
    "attribute, value, error, message",
    [
        ("lr", "x", TypeError, "learning rate must be a number, not 'str'"),
        ("lr", -0.5, ValueError, "Invalid learning rate: -0.5"),
        ("eps", 0.0, ValueError, "Invalid epsilon value: 0.0"),
        ("betas", None, TypeError, "betas must be a pair"),
        ("step_count", -5, ValueError, "Adam.step_count must be >= 0, got -5"),
        ("step_count", 2.0, TypeError, "Adam.step_count must be an int, not 'float'"),
        ("exp_avg", [0.0], ValueError, "'exp_avg' has 1 entries for 3 parameters"),
        ("exp_avg", None, ValueError, "must be lists of numbers, not None"),
        ("exp_avg_sq", [0.0, "x", 0.0], TypeError, r"'exp_avg_sq'\[1\] must be a number, not 'str'"),
    ],
)
def test_adam_step_with_a_bad_attribute_changes_nothing(engine, attribute, value, error, message):
    opt = stepped(engine, MAKERS["adam"])
    before = snapshot(opt)
    setattr(opt, attribute, value)
    with pytest.raises(error, match=message):
        opt.step()
    setattr_back = {k: v for k, v in before[2].items()}
    assert [p.data for p in opt.params] == before[0] and [p.grad for p in opt.params] == before[1]
    for name in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
        if name != attribute:
            assert list(getattr(opt, name)) == setattr_back[name]
    if attribute != "step_count":
        assert opt.step_count == 2


@pytest.mark.parametrize("buffer", ["exp_avg_sq", "max_exp_avg_sq"])
def test_a_negative_second_moment_is_refused_before_any_update(engine, buffer):
    # sqrt of a negative number would raise halfway through the loop on the Python side and
    # give NaN in C: both refuse it first, naming the entry.
    opt = stepped(engine, MAKERS["adam"])
    getattr(opt, buffer)[2] = -1e-3
    before = snapshot(opt)
    with pytest.raises(ValueError, match=rf"Adam state '{buffer}'\[2\] is -0.001: a second moment cannot be negative"):
        opt.step()
    assert snapshot(opt) == before


def test_sgd_step_with_a_bad_attribute_changes_nothing(engine):
    opt = stepped(engine, MAKERS["sgd"])
    before = snapshot(opt)
    opt.dampening = "x"
    with pytest.raises(TypeError, match="dampening must be a number"):
        opt.step()
    opt.dampening = 0.0
    opt.momentum_buffer = [1.0, 2.0]
    with pytest.raises(ValueError, match="'momentum_buffer' has 2 entries for 3 parameters"):
        opt.step()
    opt.momentum_buffer = None
    opt.nesterov = True
    opt.momentum = 0.0
    with pytest.raises(ValueError, match="Nesterov momentum requires"):
        opt.step()
    after = snapshot(opt)
    assert after[:2] == before[:2]


def test_a_list_assigned_as_buffer_is_taken(engine):
    opt = stepped(engine, MAKERS["sgd"])
    reference = stepped(engine, MAKERS["sgd"])
    opt.momentum_buffer = list(opt.momentum_buffer)
    opt.step()
    reference.step()
    assert [p.data for p in opt.params] == [p.data for p in reference.params]


def test_amsgrad_switched_on_between_steps_starts_its_maximum_at_zero(engine):
    opt = stepped(engine, lambda p: optim.Adam(p, lr=0.1))
    opt.amsgrad = True
    opt.step()
    assert list(opt.max_exp_avg_sq) == list(opt.exp_avg_sq)


# -- load_state_dict checks like the constructor ----------------------------------------------
@pytest.mark.parametrize(
    "maker, key, value, error, message",
    [
        ("adam", "lr", "x", TypeError, "learning rate must be a number, not 'str'"),
        ("adam", "step_count", -5, ValueError, "Adam state 'step_count' must be >= 0, got -5"),
        ("adam", "step_count", True, TypeError, "Adam state 'step_count' must be an int, not 'bool'"),
        ("adam", "step_count", 1.5, TypeError, "must be an int, not 'float'"),
        ("adam", "betas", None, TypeError, "betas must be a pair"),
        ("adam", "eps", 0, ValueError, "Invalid epsilon value: 0"),
        ("adam", "amsgrad", "no", TypeError, "amsgrad must be True or False"),
        ("adam", "max_exp_avg_sq", None, ValueError, "amsgrad=True needs max_exp_avg_sq"),
        ("adam", "exp_avg", [0.0, math.nan, 0.0], ValueError, r"'exp_avg'\[1\]: nan \(must be finite\)"),
        ("adam", "exp_avg", "abc", TypeError, "'exp_avg' must be a list of 3 numbers, not 'str'"),
        ("adam", "exp_avg_sq", [0.0, 0.0, -1.0], ValueError, r"'exp_avg_sq'\[2\] is -1.0"),
        ("adamw", "exp_avg", None, ValueError, "exp_avg and exp_avg_sq must be lists of numbers"),
        ("sgd", "dampening", "x", TypeError, "dampening must be a number"),
        ("sgd", "momentum_buffer", [1.0, 2.0], ValueError, "has 2 entries for 3 parameters"),
        ("sgd", "lr", math.inf, ValueError, "must be finite"),
    ],
)
def test_load_state_dict_checks_and_changes_nothing_on_error(engine, maker, key, value, error, message):
    source = stepped(engine, MAKERS[maker])
    state = json.loads(json.dumps(source.state_dict()))
    state[key] = value
    target = stepped(engine, MAKERS[maker], steps=1)
    target.lr = 0.125
    before = snapshot(target)
    with pytest.raises(error, match=message):
        target.load_state_dict(state)
    assert snapshot(target) == before and target.lr == 0.125


def test_loaded_state_gets_normalised_numbers(engine):
    np = pytest.importorskip("numpy", reason="numpy not installed: NumPy numbers in a state not checked")
    opt = stepped(engine, MAKERS["adam"])
    state = opt.state_dict()
    state.update(lr=np.float32(0.5), step_count=np.int64(7), exp_avg=[np.float32(0.5), 1, np.float64(2.0)])
    fresh = stepped(engine, MAKERS["adam"], steps=0)
    fresh.load_state_dict(state)
    assert (fresh.lr, fresh.step_count, list(fresh.exp_avg)) == (0.5, 7, [0.5, 1.0, 2.0])
    assert type(fresh.lr) is float and type(fresh.step_count) is int
    json.dumps(fresh.state_dict())


def test_an_optimizer_of_your_own_gets_the_base_checks(engine):
    class Plain(optim.Optimizer):
        hyperparameters = ("lr",)

        def step(self):
            for p in self.params:
                p.data -= self.lr * p.grad

    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        Plain([engine(1.0)], -1)
    params = [engine(1.0), engine(2.0)]
    opt = Plain(params, 0.5)
    for p in params:
        p.grad = 2.0
    opt.step()
    assert [p.data for p in params] == [0.0, 1.0]
    opt.zero_grad()
    assert [p.grad for p in params] == [0.0, 0.0]
    assert opt.state_dict() == {"lr": 0.5}
    with pytest.raises(TypeError, match="learning rate must be a number"):
        opt.load_state_dict({"lr": "x"})
    opt.load_state_dict({"lr": 0.25})
    assert opt.lr == 0.25
