"""Importing safety-gymnasium 1.0.0 on Python >= 3.11.

safety-gymnasium's geometry dataclasses use numpy arrays as field defaults.
Python 3.11 rejects any unhashable default (``ValueError: mutable default
<class 'numpy.ndarray'> ... use default_factory``), so the package does not
import as published. ``import_safety_gymnasium()`` imports it with
``dataclasses.dataclass`` temporarily wrapped so that such defaults become
``default_factory`` fields (each instance gets its own copy, which is also the
semantics the authors meant). The wrapper is removed as soon as the import
finishes: dataclasses defined anywhere else behave as usual.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import io
import sys
import threading
from collections.abc import Iterator
from types import ModuleType

import numpy as np

_LOCK = threading.Lock()


def _array_factory(value: np.ndarray):
    return lambda: value.copy()


def _convert_array_defaults(cls: type) -> None:
    """Rewrites numpy-array class attributes of ``cls`` into default factories."""
    annotations = cls.__dict__.get("__annotations__", {})
    for name in annotations:
        value = cls.__dict__.get(name, dataclasses.MISSING)
        if isinstance(value, np.ndarray):
            setattr(cls, name, dataclasses.field(default_factory=_array_factory(value)))
        elif isinstance(value, dataclasses.Field) and isinstance(value.default, np.ndarray):
            array = value.default
            value.default = dataclasses.MISSING
            value.default_factory = _array_factory(array)


@contextlib.contextmanager
def array_defaults_allowed() -> Iterator[None]:
    """Within this context, ``@dataclass`` accepts numpy-array defaults."""
    original = dataclasses.dataclass

    @functools.wraps(original)
    def patched(cls=None, /, **kwargs):
        def wrap(klass):
            _convert_array_defaults(klass)
            return original(klass, **kwargs)

        return wrap if cls is None else wrap(cls)

    with _LOCK:
        dataclasses.dataclass = patched
        try:
            yield
        finally:
            dataclasses.dataclass = original


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Swallows what is printed to stderr (not exceptions) within the context."""
    with contextlib.redirect_stderr(io.StringIO()):
        yield


def import_safety_gymnasium() -> ModuleType:
    """Returns the ``safety_gymnasium`` module, importing it with the fix if needed."""
    module = sys.modules.get("safety_gymnasium")
    if module is not None:
        return module
    try:
        # gymnasium-robotics prints a notice about its Adroit tasks to stderr on
        # import; it concerns no task this package uses.
        with array_defaults_allowed(), quiet_stderr():
            return importlib.import_module("safety_gymnasium")
    except ImportError as error:
        # Leave no half-imported submodules behind for a later attempt.
        for name in [n for n in sys.modules if n.startswith("safety_gymnasium")]:
            del sys.modules[name]
        raise ImportError(
            "safety-gymnasium is not installed; install it with "
            "'pip install --no-deps safety-gymnasium==1.0.0 gymnasium-robotics==1.2.2' "
            "(see requirements-nodeps.txt)"
        ) from error
