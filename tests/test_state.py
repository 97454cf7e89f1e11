"""Saving and loading models: state_dict()/load_state_dict() and pickle, on both engines and across them."""
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import micrograd.nn

# Subprocesses must import the micrograd under test (the source tree, or the installed copy in
# CI), so they get its folder on PYTHONPATH and run elsewhere than the checkout, where the
# current directory would come first on sys.path.
PACKAGE_PARENT = Path(micrograd.__file__).resolve().parent.parent


def test_state_dict_keys_and_values_follow_the_parameters(nn):
    model = nn.MLP(2, [3, 1])
    state = model.state_dict()
    expected_keys = [f"layers.0.neurons.{i}.{k}" for i in range(3) for k in ("w", "b")]
    expected_keys += ["layers.1.neurons.0.w", "layers.1.neurons.0.b"]
    assert list(state) == expected_keys
    n = model.layers[0].neurons[1]
    assert state["layers.0.neurons.1.w"] == [w.data for w in n.w]
    assert state["layers.0.neurons.1.b"] == n.b.data
    flat = []
    for key in expected_keys:
        flat += state[key] if isinstance(state[key], list) else [state[key]]
    assert flat == [p.data for p in model.parameters()]


def test_state_dict_is_plain_json(nn):
    model = nn.MLP(2, [4, 4, 1])
    state = model.state_dict()
    assert all(type(v) is float for entry in state.values() for v in (entry if isinstance(entry, list) else [entry]))
    assert json.loads(json.dumps(state)) == state


def test_neuron_and_layer_state_dicts(nn):
    n = nn.Neuron(2)
    assert list(n.state_dict()) == ["w", "b"]
    assert list(nn.Layer(2, 2).state_dict()) == ["neurons.0.w", "neurons.0.b", "neurons.1.w", "neurons.1.b"]


def test_load_state_dict_restores_outputs_through_json(nn):
    source = nn.MLP(2, [5, 5, 1], activation="tanh")
    target = nn.MLP(2, [5, 5, 1], activation="tanh")
    x = [0.4, -1.2]
    assert target(x).data != source(x).data
    target.load_state_dict(json.loads(json.dumps(source.state_dict())))
    assert [p.data for p in target.parameters()] == [p.data for p in source.parameters()]
    assert target(x).data == source(x).data


def test_load_state_dict_is_strict_and_changes_nothing_on_error(nn):
    model = nn.MLP(2, [2, 1])
    before = [p.data for p in model.parameters()]
    good = {k: v for k, v in nn.MLP(2, [2, 1]).state_dict().items()}

    missing = dict(good)
    del missing["layers.1.neurons.0.b"]
    with pytest.raises(KeyError, match=r"missing keys \['layers.1.neurons.0.b'\], unexpected keys \[\]"):
        model.load_state_dict(missing)

    extra = dict(good, **{"layers.2.neurons.0.b": 0.0})
    with pytest.raises(KeyError, match=r"unexpected keys \['layers.2.neurons.0.b'\]"):
        model.load_state_dict(extra)

    short = dict(good, **{"layers.1.neurons.0.w": [1.0]})
    with pytest.raises(ValueError, match=r"state\['layers.1.neurons.0.w'\] has 1 numbers; this module has 2"):
        model.load_state_dict(short)

    # a wrong entry late in the dict must not leave the earlier parameters half loaded
    bad_type = dict(good, **{"layers.1.neurons.0.b": "0.5"})
    with pytest.raises(TypeError, match=r"state\['layers.1.neurons.0.b'\] must hold numbers, not 'str'"):
        model.load_state_dict(bad_type)
    not_a_list = dict(good, **{"layers.0.neurons.0.w": 1.0})
    with pytest.raises(TypeError, match="must be a list of 2 numbers"):
        model.load_state_dict(not_a_list)
    with pytest.raises(TypeError, match="state must be a dict"):
        model.load_state_dict([1.0, 2.0])
    assert [p.data for p in model.parameters()] == before


def test_a_bigger_model_does_not_load_into_a_smaller_one(nn):
    with pytest.raises(KeyError, match="missing keys"):
        nn.MLP(2, [3, 1]).load_state_dict(nn.MLP(2, [2, 1]).state_dict())
    with pytest.raises(ValueError, match="has 3 numbers; this module has 2"):
        nn.MLP(2, [2, 1]).load_state_dict(nn.MLP(3, [2, 1]).state_dict())


def test_custom_module_saves_its_parameter_list(nn, engine):
    class Affine(nn.Module):
        def __init__(self):
            self.a, self.b = engine(2.0), engine(-1.0)

        def parameters(self):
            return [self.a, self.b]

    m = Affine()
    assert m.state_dict() == {"parameters": [2.0, -1.0]}
    m.load_state_dict({"parameters": [0.5, 4]})
    assert (m.a.data, m.b.data) == (0.5, 4.0)


def test_pickle_round_trip_keeps_structure_values_and_activations(nn, engine):
    model = nn.MLP(2, [3, 2], activation="sigmoid", output_activation="tanh")
    for p in model.parameters():
        p.grad = 0.25
    copy = pickle.loads(pickle.dumps(model))
    assert repr(copy) == repr(model)
    assert [p.data for p in copy.parameters()] == [p.data for p in model.parameters()]
    assert [p.grad for p in copy.parameters()] == [0.25] * len(model.parameters())
    assert copy([0.1, 0.2])[1].data == model([0.1, 0.2])[1].data
    # restored on the active engine, whichever engine pickled it
    from micrograd.engine import Value as active

    assert all(type(p) is active for p in copy.parameters())


def run_python(code, pure, cwd):
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_PARENT))
    env.pop("MICROGRAD_PUREPYTHON", None)
    env.pop("MICROGRAD_REQUIRE_EXTENSION", None)
    if pure:
        env["MICROGRAD_PUREPYTHON"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


SAVE = """
    import json, pickle, random
    import micrograd
    from micrograd.nn import MLP
    random.seed(11)
    model = MLP(2, [4, 3, 1], activation="tanh")
    model.parameters()[0].grad = 1.5
    pickle.dump(model, open({path!r}, "wb"))
    json.dump(model.state_dict(), open({json_path!r}, "w"))
    print(json.dumps(dict(backend=micrograd.BACKEND, numbers=[model([0.3, -0.6]).data] + [p.data for p in model.parameters()])))
"""

LOAD = """
    import json, pickle
    import micrograd
    from micrograd.nn import MLP
    model = pickle.load(open({path!r}, "rb"))
    fresh = MLP(2, [4, 3, 1], activation="tanh")
    fresh.load_state_dict(json.load(open({json_path!r})))
    print(json.dumps(dict(
        backend=micrograd.BACKEND,
        classes=sorted({{type(p).__module__ for p in model.parameters() + fresh.parameters()}}),
        same_repr=repr(model) == repr(fresh),
        grad=model.parameters()[0].grad,
        pickled=[model([0.3, -0.6]).data] + [p.data for p in model.parameters()],
        from_json=[fresh([0.3, -0.6]).data] + [p.data for p in fresh.parameters()],
    )))
"""


@pytest.mark.cython
@pytest.mark.parametrize("save_pure", [True, False], ids=["pure-to-compiled", "compiled-to-pure"])
def test_model_saved_under_one_engine_loads_under_the_other(both_engines, tmp_path, save_pure):
    paths = dict(path=str(tmp_path / "model.pkl"), json_path=str(tmp_path / "model.json"))
    saved = json.loads(run_python(SAVE.format(**paths), pure=save_pure, cwd=tmp_path))
    loaded = json.loads(run_python(LOAD.format(**paths), pure=not save_pure, cwd=tmp_path))
    assert saved["backend"] == ("python" if save_pure else "cython")
    assert loaded["backend"] == ("cython" if save_pure else "python")
    assert loaded["classes"] == ["micrograd._engine" if save_pure else "micrograd.pure"]
    assert loaded["same_repr"] and loaded["grad"] == 1.5
    # the same weights and the same output, bit for bit, from the pickle and from the JSON state
    assert loaded["pickled"] == saved["numbers"] == loaded["from_json"]
