"""The type stub of the compiled engine (micrograd/_engine.pyi) declares exactly the Value API
both engines have, with the pure engine's signatures, and mypy reads it as intended."""
from __future__ import annotations

import ast
import inspect
import re
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

import micrograd

PACKAGE_DIR = Path(micrograd.__file__).resolve().parent
STUB = PACKAGE_DIR / "_engine.pyi"

# Karpathy's API includes these underscore names: his draw_dot() reads _prev and _op, the
# lecture calls _backward() node by node (and assigns it), and microgpt's backward reads
# _children and _local_grads. The other underscore names are implementation.
KARPATHY_UNDERSCORE_API = {"_prev", "_op", "_backward", "_children", "_local_grads"}
# Class machinery that Python or Cython puts on a class: not API. (__firstlineno__ and
# __static_attributes__ are new in Python 3.13.)
CLASS_MACHINERY = {
    "__dict__", "__doc__", "__firstlineno__", "__module__", "__new__", "__qualname__",
    "__slots__", "__static_attributes__", "__weakref__",
}


def is_api_name(name: str) -> bool:
    if name in CLASS_MACHINERY:
        return False
    dunder = name.startswith("__") and name.endswith("__")
    return dunder or not name.startswith("_") or name in KARPATHY_UNDERSCORE_API


def runtime_api(cls: type) -> set[str]:
    """The API names a Value class defines itself."""
    return {name for name in vars(cls) if is_api_name(name)}


def stub_module() -> ast.Module:
    return ast.parse(STUB.read_text(encoding="utf-8"), filename=str(STUB))


def stub_value_class() -> ast.ClassDef:
    (cls,) = [node for node in stub_module().body if isinstance(node, ast.ClassDef) and node.name == "Value"]
    return cls


def stub_functions() -> dict[str, list[ast.FunctionDef]]:
    """Value's methods in the stub, by name (a property has a getter and maybe a setter)."""
    found: dict[str, list[ast.FunctionDef]] = {}
    for node in stub_value_class().body:
        if isinstance(node, ast.FunctionDef):
            found.setdefault(node.name, []).append(node)
    return found


def decorator_names(func: ast.FunctionDef) -> set[str]:
    return {ast.unparse(d) for d in func.decorator_list}


def is_property(defs: list[ast.FunctionDef]) -> bool:
    return any("property" in decorator_names(d) for d in defs)


def stub_setters() -> set[str]:
    return {
        name for name, defs in stub_functions().items()
        if any(f"{name}.setter" in decorator_names(d) for d in defs)
    }


def test_stub_is_shipped_beside_the_package_with_py_typed():
    # Without py.typed, mypy ignores an installed package's annotations and stubs (PEP 561).
    assert STUB.is_file()
    assert (PACKAGE_DIR / "py.typed").is_file()


def test_stub_declares_exactly_the_value_api(engine):
    stub_names = set(stub_functions()) | {
        node.target.id for node in stub_value_class().body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }
    assert stub_names == runtime_api(engine)


def test_stub_module_names_match_the_compiled_module(both_engines):
    _, compiled = both_engines
    module = sys.modules[compiled.__module__]
    stub_names = set()
    for node in stub_module().body:
        if isinstance(node, ast.ClassDef):
            stub_names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            stub_names.add(node.target.id)
    public = {name for name in vars(module) if not name.startswith("_")}
    assert {name for name in stub_names if not name.startswith("_")} == public


def stub_parameters(func: ast.FunctionDef) -> list[tuple[str, object]]:
    """(name, default) of each parameter; inspect.Parameter.empty where there is no default."""
    args = func.args.args
    defaults = [inspect.Parameter.empty] * (len(args) - len(func.args.defaults))
    defaults += [ast.literal_eval(d) for d in func.args.defaults]
    keyword_only = [
        (a.arg, inspect.Parameter.empty if d is None else ast.literal_eval(d))
        for a, d in zip(func.args.kwonlyargs, func.args.kw_defaults)
    ]
    return [(a.arg, default) for a, default in zip(args, defaults)] + keyword_only


def runtime_parameters(obj: object) -> list[tuple[str, object]] | None:
    """Like stub_parameters, for a method whose signature Python can see: functions, and Cython
    `def` methods. None for C slot wrappers (__add__, __init__ of the compiled class, ...),
    whose introspected signature is the generic slot one, not the method's."""
    if not (inspect.isfunction(obj) or type(obj).__name__ == "cython_function_or_method"):
        return None
    return [(p.name, p.default) for p in inspect.signature(obj).parameters.values()]


def test_stub_signatures_match_the_engine(engine):
    unseen = set()  # methods whose runtime signature Python cannot show
    for name, defs in stub_functions().items():
        if is_property(defs):
            continue
        (func,) = defs
        runtime = runtime_parameters(vars(engine)[name])
        if runtime is None:
            unseen.add(name)
        else:
            assert stub_parameters(func) == runtime, name
    # Every method of the pure engine shows its signature; of the compiled one, only the
    # operator slots (__add__, ...) may hide theirs.
    if engine.__module__ == "micrograd.pure":
        assert unseen == set()
    else:
        assert all(name.startswith("__") for name in unseen), unseen


# Set through each settable property of the stub: (what is assigned, what reading it gives).
SETTABLE = {"data": (3, 3.0), "grad": (True, 1.0), "label": ("w1", "w1"), "_backward": (print, print)}


def test_stub_setters_are_the_settable_properties(engine):
    assert stub_setters() == set(SETTABLE)
    v = engine(0.5)
    for name, (given, expected) in SETTABLE.items():
        setattr(v, name, given)
        got = getattr(v, name)
        assert got == expected and type(got) is type(expected), name


# Every part of the API, one use per line so that each result type is checked; mypy must
# accept it all.
GOOD_PROGRAM = """
    from micrograd.{module} import Value

    a = Value(-4.0, label="a")
    b = Value(2)
    n = Value(1.0, (a, b), "+")
    v: Value
    v = a + b
    v = a + 1
    v = 1 + a
    v = a - b
    v = a - 1.5
    v = 3 - a
    v = a * b
    v = a * 2
    v = 2 * a
    v = a / b
    v = a / 2
    v = 1.5 / a
    v = a**2
    v = a**b
    v = 2**a
    v = -a
    v = a.relu()
    v = a.tanh()
    v = a.exp()
    v = b.log()
    v = a.sigmoid()
    v = a.abs()
    v = abs(a)
    m = Value(6.0, (a, b), (2.0, -4.0))
    m = Value(6.0, (a, b), local_grads=(2.0, -4.0))
    v = sum((a, b, n, m), Value(0.0))
    v.backward()
    v._backward()
    n._backward = lambda: None
    locals_: tuple[float, ...] = m._local_grads
    kids: tuple[Value, ...] = m._children
    hexes: str = a.data.hex() + a.grad.hex()  # data and grad are floats (an int has no .hex())
    text: str = a.label + v._op + repr(v)
    children: tuple[Value, ...] = v._prev
    a.data = a.data - 0.1 * a.grad
    a.grad = 0
    a.label = "weight"
"""
# Mistakes mypy must catch, each marked with the error code mypy must give for its line.
BAD_PROGRAM = """
    from micrograd.{module} import Value

    v = Value(1.0)
    v.no_such_method()  # expect: attr-defined
    s: str = v.data  # expect: assignment
"""
EXPECT = re.compile(r"# expect: (?P<code>[a-z-]+)$")


def expected_errors(program: str) -> set[tuple[int, str]]:
    return {
        (number, match["code"])
        for number, line in enumerate(program.splitlines(), start=1)
        for match in [EXPECT.search(line)] if match
    }


ERROR_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]$")


def is_installed(path: Path) -> bool:
    site = {Path(sysconfig.get_paths()[key]).resolve() for key in ("purelib", "platlib")}
    return any(s in path.parents for s in site)


def test_mypy_sees_the_same_api_in_the_stub_and_the_pure_engine(tmp_path, monkeypatch):
    try:
        from mypy import api as mypy_api
    except ImportError:
        pytest.skip("mypy is not installed (pip install mypy to type-check the stub)")
    expected = {}  # file name -> {(line, error code)}
    for module in ("_engine", "pure"):
        for kind, template in (("good", GOOD_PROGRAM), ("bad", BAD_PROGRAM)):
            program = textwrap.dedent(template).lstrip("\n").format(module=module)
            path = tmp_path / f"{kind}_{module.strip('_')}.py"
            path.write_text(program, encoding="utf-8")
            expected[path.name] = expected_errors(program)
    assert any(expected.values())  # the bad programs do expect errors
    # mypy looks up modules in MYPYPATH and in its working directory. An installed micrograd
    # must be found in site-packages, which mypy reads only with a py.typed marker; a source
    # tree is found by working from the folder above it.
    monkeypatch.setenv("MYPYPATH", str(tmp_path))
    monkeypatch.chdir(tmp_path if is_installed(PACKAGE_DIR) else PACKAGE_DIR.parent)
    modules = ["micrograd._engine", *(Path(name).stem for name in expected)]  # the stub must type-check too
    stdout, stderr, status = mypy_api.run([
        "--follow-imports=silent",  # report errors in these modules, not in the ones they import
        "--show-error-codes", "--no-error-summary", "--no-pretty",
        "--cache-dir", str(tmp_path / ".mypy_cache"),
        *(arg for module in modules for arg in ("-m", module)),
    ])
    assert stderr == "", stderr
    errors: dict[str, set[tuple[int, str]]] = {name: set() for name in expected}
    for line in stdout.splitlines():
        match = ERROR_LINE.match(line)
        assert match, f"unexpected mypy output: {line}"
        errors.setdefault(Path(match["file"]).name, set()).add((int(match["line"]), match["code"]))
    assert errors == expected, stdout
    assert status == 1  # mypy's exit status when it found errors (in the bad programs)
