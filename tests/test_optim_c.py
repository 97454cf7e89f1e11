"""The optimizers' C loops (micrograd._optim, issue 10 part 2): on compiled-engine parameters
step() and zero_grad() run one C loop, bit for bit the Python loop that pure-engine
parameters take, for every optimizer and option."""
import math
import random
import struct
import threading

import pytest

import micrograd.nn
from micrograd import optim

pytestmark = pytest.mark.cython

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, amsgrad=True, maximize=True)),
    ("Adam", dict(lr=0.02, betas=(0.3, 0.6))),  # 1 - beta1 >= 0.5: lerp's other branch
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.02, betas=(0.3, 0.6), weight_decay=0.5, amsgrad=True)),
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CASES)]

SPECIAL = [0.0, -0.0, 5e-324, -5e-324, 1e-300, 1e300, math.inf, -math.inf, math.nan]


def same_bits(a, b):
    """Bit-identical, where any two NaNs count as equal (README: 'both NaN, or the same bits')."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return struct.pack("<d", a) == struct.pack("<d", b)


def grads_for(rng, n, special):
    grads = [rng.gauss(0, 1) * 10 ** rng.uniform(-4, 3) for _ in range(n)]
    if special:
        for i in rng.sample(range(n), 4):
            grads[i] = rng.choice(SPECIAL)
    return grads


def train(Value, name, kwargs, n, steps, seed, special=False):
    rng = random.Random(seed)
    params = [Value(rng.uniform(-2, 2)) for _ in range(n)]
    opt = getattr(optim, name)(params, **kwargs)
    loops = set()
    for _ in range(steps):
        opt.zero_grad()
        loops.add(opt.last_loop)
        for p, g in zip(params, grads_for(rng, n, special)):
            p.grad += g
        opt.step()
        loops.add(opt.last_loop)
    return params, opt, loops


def assert_same(params_a, params_b, opt_a, opt_b):
    assert all(same_bits(a.data, b.data) for a, b in zip(params_a, params_b))
    for buf in opt_a.buffers:
        a, b = getattr(opt_a, buf), getattr(opt_b, buf)
        assert (a is None) == (b is None)
        if a is not None:
            assert all(same_bits(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("name, kwargs", CASES, ids=IDS)
def test_c_loop_gives_the_python_loops_bits(both_engines, name, kwargs):
    pure, compiled = both_engines
    p_params, p_opt, p_loops = train(pure, name, kwargs, n=64, steps=200, seed=1)
    c_params, c_opt, c_loops = train(compiled, name, kwargs, n=64, steps=200, seed=1)
    assert p_loops == {"python"} and c_loops == {"c"}
    assert_same(p_params, c_params, p_opt, c_opt)
    assert len({p.data for p in c_params}) > 32  # the parameters really moved, and apart


@pytest.mark.parametrize("name, kwargs", CASES, ids=IDS)
def test_special_floats_give_the_same_bits(both_engines, name, kwargs):
    pure, compiled = both_engines
    p_params, p_opt, _ = train(pure, name, kwargs, n=16, steps=30, seed=2, special=True)
    c_params, c_opt, _ = train(compiled, name, kwargs, n=16, steps=30, seed=2, special=True)
    assert_same(p_params, c_params, p_opt, c_opt)
    assert any(math.isnan(p.data) or math.isinf(p.data) for p in c_params)  # the specials reached data


@pytest.mark.parametrize("name, kwargs", [CASES[4], CASES[8], CASES[11]], ids=["sgd", "adam", "adamw"])
def test_c_loop_equals_python_loop_on_the_same_compiled_values(both_engines, monkeypatch, name, kwargs):
    _, compiled = both_engines
    c_params, c_opt, _ = train(compiled, name, kwargs, n=40, steps=50, seed=3)
    monkeypatch.setattr(optim, "_C", None)  # as if the C loops were not built
    py_params, py_opt, loops = train(compiled, name, kwargs, n=40, steps=50, seed=3)
    assert loops == {"python"}
    assert_same(py_params, c_params, py_opt, c_opt)


@pytest.mark.parametrize("name, kwargs", [CASES[3], CASES[8]], ids=["sgd", "adam"])
def test_large_lists_release_the_gil_and_keep_the_bits(both_engines, name, kwargs):
    from micrograd import _optim

    n = _optim.NOGIL_MIN + 3
    pure, compiled = both_engines
    p_params, p_opt, _ = train(pure, name, kwargs, n=n, steps=3, seed=4)
    c_params, c_opt, loops = train(compiled, name, kwargs, n=n, steps=3, seed=4)
    assert loops == {"c"}
    assert_same(p_params, c_params, p_opt, c_opt)


def test_threads_stepping_their_own_optimizers_agree_with_one_thread(both_engines):
    from micrograd import _optim

    _, compiled = both_engines
    n = _optim.NOGIL_MIN + 1
    expected, _, _ = train(compiled, "Adam", dict(lr=0.01), n=n, steps=5, seed=5)
    results = [None] * 4

    def work(k):
        results[k] = train(compiled, "Adam", dict(lr=0.01), n=n, steps=5, seed=5)[0]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all([p.data for p in r] == [p.data for p in expected] for r in results)


def test_mixed_engines_take_the_python_loop(both_engines):
    pure, compiled = both_engines
    params = [compiled(1.0), pure(2.0)]
    opt = optim.SGD(params, lr=0.5)
    for p in params:
        p.grad = 1.0
    opt.step()
    assert opt.last_loop == "python" and [p.data for p in params] == [0.5, 1.5]
    opt.zero_grad()
    assert opt.last_loop == "python" and [p.grad for p in params] == [0.0, 0.0]


def test_a_changed_params_list_is_noticed(both_engines):
    pure, compiled = both_engines
    params = [compiled(1.0), compiled(2.0)]
    opt = optim.SGD(params, lr=0.5)
    for p in params:
        p.grad = 1.0
    opt.step()
    assert opt.last_loop == "c"
    # the same list, one Value replaced: the C loop must update the new one, not the old
    old, new = opt.params[1], compiled(10.0)
    opt.params[1] = new
    new.grad = 2.0
    opt.step()
    assert opt.last_loop == "c" and (new.data, old.data) == (9.0, 1.5)
    # a pure Value put in: the Python loop takes over
    opt.params[0] = pure(4.0)
    opt.params[0].grad = 1.0
    opt.step()
    assert opt.last_loop == "python" and opt.params[0].data == 3.5
    # a new list assigned
    opt.params = [compiled(0.0)]
    opt.params[0].grad = -2.0
    opt.step()
    assert opt.last_loop == "c" and opt.params[0].data == 1.0


def test_a_longer_list_without_buffers_to_match_is_refused(both_engines):
    _, compiled = both_engines
    opt = optim.Adam([compiled(1.0)], lr=0.1)
    opt.params.append(compiled(2.0))
    with pytest.raises(ValueError, match="'exp_avg' has 1 entries for 2 parameters"):
        opt.step()
    assert opt.step_count == 0


def test_zero_grad_runs_the_c_loop(both_engines):
    pure, compiled = both_engines
    params = [compiled(1.0) for _ in range(5)]
    for p in params:
        p.grad = 3.0
    opt = optim.Adam(params)
    opt.zero_grad()
    assert opt.last_loop == "c" and [p.grad for p in params] == [0.0] * 5
    assert optim.zero_grads(params) is True
    assert optim.zero_grads([pure(1.0)]) is False


def test_module_zero_grad_uses_the_c_loop_on_compiled_models(both_engines, monkeypatch):
    pure, compiled = both_engines
    calls = []
    real = optim.zero_grads
    monkeypatch.setattr(micrograd.nn, "zero_grads", lambda params: calls.append(real(params)))
    for engine, c_loop in ((compiled, True), (pure, False)):
        model = micrograd.nn.MLP(2, [3, 1], engine=engine)
        model([1.0, -1.0]).backward()
        assert any(p.grad != 0.0 for p in model.parameters())
        model.zero_grad()
        assert all(p.grad == 0.0 and type(p.grad) is float for p in model.parameters())
        assert calls.pop() is c_loop


def test_optimizer_pickles_without_its_pointers(both_engines):
    import pickle

    _, compiled = both_engines
    params = [compiled(1.0), compiled(2.0)]
    opt = optim.Adam(params, lr=0.1)
    for p in params:
        p.grad = 1.0
    opt.step()
    copy = pickle.loads(pickle.dumps(opt))
    for p in copy.params:
        p.grad = 1.0
    copy.step()
    # Values unpickle on the active engine (pure under MICROGRAD_PUREPYTHON=1)
    assert copy.last_loop == ("c" if type(copy.params[0]) is compiled else "python")
    assert copy.step_count == 2 and [p.data for p in copy.params] != [p.data for p in params]
