"""The optimizer part of a training step: ``opt.zero_grad(); opt.step()`` over the parameters
of the demo's MLP(2, [16, 16, 1]) (337) and of a microgpt-size model (4,800), for SGD and Adam.
On the compiled engine both run micrograd._optim's C loops; on the pure engine, the Python
loops. Gate: after a few steps the parameters equal the pure engine's bit for bit."""
import random

import pytest

from bench_support import ENGINES
from micrograd import engine as engine_module
from micrograd import optim

SIZES = {"demo-mlp": 337, "microgpt": 4800}
OPTIMIZERS = {
    "sgd": lambda params: optim.SGD(params, lr=0.01),
    "adam": lambda params: optim.Adam(params, lr=0.01),
}


def setup_params(Value, n):
    rng = random.Random(0)
    params = [Value(rng.uniform(-1, 1)) for _ in range(n)]
    grads = [rng.gauss(0, 1) for _ in range(n)]
    return params, grads


def few_steps(Value, make, n):
    params, grads = setup_params(Value, n)
    opt = make(params)
    for _ in range(3):
        opt.zero_grad()
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
    return [p.data for p in params], opt.last_loop


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("engine", ENGINES)
def test_optimizer_step(benchmark, timed, engine, name, size):
    if engine not in engine_module.ENGINES:
        pytest.skip(f"compiled engine not built here: {engine_module.EXTENSION_ERROR}")
    Value, make, n = engine_module.ENGINES[engine], OPTIMIZERS[name], SIZES[size]
    got, loop = few_steps(Value, make, n)
    expected, _ = few_steps(engine_module.ENGINES["python"], make, n)
    if got != expected:
        pytest.fail(f"{engine} {name}: parameters differ from the pure engine's after 3 steps")

    params, grads = setup_params(Value, n)
    opt = make(params)
    for p, g in zip(params, grads):
        p.grad = g

    def step():
        opt.zero_grad()
        opt.step()

    benchmark.group = f"optimizer {name} n={n}"
    benchmark.extra_info.update(engine=engine, workload=f"{name}-{size}", n=n, loop=loop)
    timed(step)
    assert opt.last_loop == ("c" if engine == "cython" else "python")
