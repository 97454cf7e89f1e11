"""``Value``, from the compiled engine where it is built, else from the pure-Python one.

    MICROGRAD_PUREPYTHON=1         use the pure engine even where the extension is built
    MICROGRAD_REQUIRE_EXTENSION=1  make a missing or broken extension an ImportError

Both variables count as on for any value but empty and ``0``. ``ENGINES`` maps each engine this
process can load to its ``Value`` class, for side-by-side comparisons in one process.
"""
from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

from micrograd import pure


def flag(name: str) -> bool:
    """An on/off environment variable: unset, empty and '0' are off."""
    return os.environ.get(name, "0") not in ("", "0")


ENGINES: dict = {"python": pure.Value}
EXTENSION_ERROR: str | None = None  # why the compiled engine is not loaded, if it is not

if flag("MICROGRAD_PUREPYTHON") and flag("MICROGRAD_REQUIRE_EXTENSION"):
    # A configuration error whatever is built: say so before trying the import.
    raise ImportError("MICROGRAD_PUREPYTHON and MICROGRAD_REQUIRE_EXTENSION are both set")

try:
    # By full name: `from micrograd import _engine` would report a missing extension as a
    # "circular import", since micrograd is still initialising here.
    _engine = importlib.import_module("micrograd._engine")
except ImportError as exc:
    if flag("MICROGRAD_REQUIRE_EXTENSION"):
        raise ImportError(
            "MICROGRAD_REQUIRE_EXTENSION is set but the compiled engine micrograd._engine "
            f"could not be imported: {exc}"
        ) from exc
    EXTENSION_ERROR = f"{type(exc).__name__}: {exc}"
    if not flag("MICROGRAD_PUREPYTHON"):  # a source tree hiding an installed compiled copy?
        from micrograd._diagnose import warn_if_shadowed

        warn_if_shadowed(EXTENSION_ERROR)
else:
    ENGINES["cython"] = _engine.Value

if flag("MICROGRAD_PUREPYTHON"):
    BACKEND = "python"
else:
    BACKEND = "cython" if "cython" in ENGINES else "python"

VALUE_TYPES = tuple(ENGINES.values())  # every loaded engine's Value class


def is_value(obj: object) -> bool:
    """True for a Value of any engine loaded in this process."""
    return isinstance(obj, VALUE_TYPES)


if TYPE_CHECKING:  # both engines have this API (tests/test_stub.py checks the compiled stub)
    from micrograd.pure import Value
else:
    Value = ENGINES[BACKEND]


def _restore_value(data: float, grad: float, label: str):
    """Unpickle a Value as a leaf of the active engine, whichever engine pickled it."""
    v = Value(data, label=label)
    v.grad = grad
    return v


__all__ = ["Value", "BACKEND", "ENGINES"]
