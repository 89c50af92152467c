"""The single entry point through which statten-hw imports Lava.

Why this module exists
----------------------
lava-nc 0.10.0 (and lava-dl 0.6.0, which builds on it) declares
``python_requires <3.11``.  The only thing that actually breaks on Python 3.11
is :mod:`dataclasses`: since 3.11 a dataclass field whose default is an
*unhashable* object (a list, a dict, a set, or an instance of a non-frozen
dataclass such as ``lava.magma.compiler.var_model.ByteEncoder``) is rejected
with ``ValueError: mutable default ... is not allowed: use default_factory``,
and this happens while ``import lava.proc...`` is still running.

Before the first Lava import, and only on Python >= 3.11, this module wraps
``dataclasses._process_class`` so that, for classes defined in Lava's own
modules (``cls.__module__`` starting with ``"lava"``), every annotated field
whose default is unhashable is rewritten to
``field(default_factory=lambda: copy.deepcopy(default))`` -- which is what
Python < 3.11 effectively allowed, except each instance now gets its own copy.
Classes from any other module (torch, numpy, our own code) are left untouched
and still get the standard ``ValueError``; a global patch would change their
semantics.  The wrapper is installed once and is idempotent.

Every other module of statten-hw must import Lava through here::

    from statten_hw.simulator.lava import _compat
    lava = _compat.import_lava()          # raises a clear error without Lava
    lif = lava.LIF(shape=(4,), du=..., dv=..., vth=...)

Install Lava with (it has to skip its Python version pin)::

    pip install --no-deps --ignore-requires-python lava-nc==0.10.0 lava-dl==0.6.0
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import multiprocessing
import re
import sys
import threading
import types
import typing
from typing import Any, Optional

from statten_hw.errors import StattenError

__all__ = [
    "HAS_LAVA",
    "LAVA_IMPORT_ERROR",
    "LavaUnavailableError",
    "install_dataclass_shim",
    "import_lava",
    "import_lava_dl",
    "require_lava",
]

_SHIM_MARKER = "_statten_hw_lava_shim"
_SHIM_LOCK = threading.Lock()
_SCOPED_PREFIX = "lava"
_CLASSVAR_STR = re.compile(r"^\s*(?:[A-Za-z_][\w]*\.)*(ClassVar|InitVar)\b")


class LavaUnavailableError(StattenError, ImportError):
    """Raised by :func:`require_lava` when Lava cannot be imported: a user-facing error (one line,
    exit 2), since Lava is installed apart from the package's declared dependencies."""


def _is_lava_module(module: Any) -> bool:
    return isinstance(module, str) and (
        module == _SCOPED_PREFIX or module.startswith(_SCOPED_PREFIX + ".")
    )


def _is_pseudo_field(annotation: Any) -> bool:
    """True for ClassVar / InitVar annotations (they may keep any default)."""
    if isinstance(annotation, str):
        return bool(_CLASSVAR_STR.match(annotation))
    if annotation is typing.ClassVar or typing.get_origin(annotation) is typing.ClassVar:
        return True
    return annotation is dataclasses.InitVar or isinstance(annotation, dataclasses.InitVar)


def _is_unhashable(value: Any) -> bool:
    # Same test as dataclasses._get_field uses on 3.11+.
    return type(value).__hash__ is None


def _factory_for(value: Any):
    return lambda v=value: copy.deepcopy(v)


def _fix_mutable_defaults(cls: type) -> None:
    """Rewrite unhashable field defaults of ``cls`` into default_factory copies."""
    annotations = cls.__dict__.get("__annotations__", {})
    for name, annotation in annotations.items():
        if name not in cls.__dict__ or _is_pseudo_field(annotation):
            continue
        value = cls.__dict__[name]
        if isinstance(value, dataclasses.Field):
            if value.default is not dataclasses.MISSING and _is_unhashable(value.default):
                value.default_factory = _factory_for(value.default)
                value.default = dataclasses.MISSING
        elif _is_unhashable(value):
            setattr(cls, name, dataclasses.field(default_factory=_factory_for(value)))


def install_dataclass_shim() -> bool:
    """Install the Lava-scoped dataclass shim (Python >= 3.11 only).

    Returns True when the shim is active after the call.  Safe to call many
    times: the wrapper is installed exactly once.
    """
    if sys.version_info < (3, 11):
        return False
    with _SHIM_LOCK:
        original = dataclasses._process_class
        if getattr(original, _SHIM_MARKER, False):
            return True

        def _process_class(cls, *args, **kwargs):
            if _is_lava_module(cls.__dict__.get("__module__")):
                _fix_mutable_defaults(cls)
            return original(cls, *args, **kwargs)

        setattr(_process_class, _SHIM_MARKER, True)
        _process_class.__wrapped__ = original  # type: ignore[attr-defined]
        _process_class.__doc__ = original.__doc__
        dataclasses._process_class = _process_class
        return True


@contextlib.contextmanager
def _fork_start_method():
    """Let Lava's import fix the multiprocessing start method although someone fixed it first.

    ``lava.magma.runtime.message_infrastructure.multiprocessing`` calls
    ``multiprocessing.set_start_method('fork')`` when imported, which raises "context has already
    been set" once anything in the process fixed the start method (a ``tqdm`` lock, a ``Pool``, an
    earlier event simulation with progress bars). Lava's actors need ``fork``: when it is already the
    method, Lava's call is made a no-op for the import; any other method is an error.
    """
    current = multiprocessing.get_start_method(allow_none=True)
    if current is None:
        yield
        return
    if current != "fork":
        raise RuntimeError(f"the multiprocessing start method is already {current!r}; Lava's actors need 'fork'")
    original = multiprocessing.set_start_method
    multiprocessing.set_start_method = lambda method, force=False: None
    try:
        yield
    finally:
        multiprocessing.set_start_method = original


def _import_core() -> types.SimpleNamespace:
    install_dataclass_shim()
    with _fork_start_method():
        return _import_lava_classes()


def _import_lava_classes() -> types.SimpleNamespace:
    # Imports are deliberately local: this is the only place Lava is imported.
    from lava.magma.core.decorator import implements, requires, tag
    from lava.magma.core.model.py.model import PyLoihiProcessModel
    from lava.magma.core.model.py.ports import PyInPort, PyOutPort
    from lava.magma.core.model.py.type import LavaPyType
    from lava.magma.core.process.ports.ports import InPort, OutPort
    from lava.magma.core.process.process import AbstractProcess
    from lava.magma.core.resources import CPU
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
    from lava.magma.runtime.mgmt_token_enums import MGMT_RESPONSE, enum_equal
    from lava.proc.conv import utils as conv_utils
    from lava.proc.conv.models import PyConvModelFixed
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense
    from lava.proc.io.injector import Injector, PyLoihiInjectorModel
    from lava.proc.io.sink import RingBuffer as SinkRingBuffer
    from lava.proc.io.source import RingBuffer as SourceRingBuffer
    from lava.proc.lif.models import PyLifModelBitAcc, PyLifResetModelBitAcc, PyTernLifModelFixed
    from lava.proc.lif.process import LIF, LIFReset, TernaryLIF
    from lava.utils.weightutils import SignMode

    return types.SimpleNamespace(
        LIF=LIF,
        LIFReset=LIFReset,
        TernaryLIF=TernaryLIF,
        Dense=Dense,
        Conv=Conv,
        SourceRingBuffer=SourceRingBuffer,
        SinkRingBuffer=SinkRingBuffer,
        Injector=Injector,
        PyLoihiInjectorModel=PyLoihiInjectorModel,
        Loihi2SimCfg=Loihi2SimCfg,
        RunSteps=RunSteps,
        MGMT_RESPONSE=MGMT_RESPONSE,
        enum_equal=enum_equal,
        SignMode=SignMode,
        # what a custom Process and its ProcessModel are made of
        AbstractProcess=AbstractProcess,
        InPort=InPort,
        OutPort=OutPort,
        PyLoihiProcessModel=PyLoihiProcessModel,
        PyInPort=PyInPort,
        PyOutPort=PyOutPort,
        LavaPyType=LavaPyType,
        LoihiProtocol=LoihiProtocol,
        CPU=CPU,
        implements=implements,
        requires=requires,
        tag=tag,
        # Lava's bit-accurate LIF models, which statten_hw.simulator.lava.neurons refines
        PyLifModelBitAcc=PyLifModelBitAcc,
        PyLifResetModelBitAcc=PyLifResetModelBitAcc,
        PyTernLifModelFixed=PyTernLifModelFixed,
        # Lava's fixed-point Conv model and its convolution, which statten_hw.simulator.lava.synapses speeds up
        PyConvModelFixed=PyConvModelFixed,
        conv_utils=conv_utils,
    )


_LAVA: Optional[types.SimpleNamespace]
LAVA_IMPORT_ERROR: Optional[BaseException]
try:
    _LAVA = _import_core()
    LAVA_IMPORT_ERROR = None
except Exception as exc:  # ImportError, or ValueError from an unshimmed Python
    _LAVA = None
    LAVA_IMPORT_ERROR = exc

HAS_LAVA: bool = _LAVA is not None


def require_lava() -> None:
    """Raise :class:`LavaUnavailableError` (chained to the cause) without Lava."""
    if LAVA_IMPORT_ERROR is not None:
        raise LavaUnavailableError(
            "Lava (lava-nc 0.10) could not be imported "
            f"({type(LAVA_IMPORT_ERROR).__name__}: {LAVA_IMPORT_ERROR}). Install it with "
            "`pip install --no-deps --ignore-requires-python lava-nc==0.10.0 lava-dl==0.6.0` "
            "(plus its deps: numpy<2 scipy networkx 'asteval<0.10'), or use the event "
            "simulator instead."
        ) from LAVA_IMPORT_ERROR


def import_lava() -> types.SimpleNamespace:
    """Namespace with the Lava classes statten-hw uses.

    Processes: ``LIF``, ``LIFReset``, ``TernaryLIF``, ``Dense``, ``Conv``, ``SourceRingBuffer``
    (lava.proc.io.source), ``SinkRingBuffer`` (lava.proc.io.sink), ``Injector`` (lava.proc.io.injector)
    and its (untagged) ``PyLoihiInjectorModel``; running:
    ``Loihi2SimCfg``, ``RunSteps``, ``MGMT_RESPONSE``, ``enum_equal`` (the
    runtime's status tokens); ``SignMode`` (weight sign modes); the parts
    of custom processes: ``AbstractProcess``, ``InPort``, ``OutPort``, ``PyLoihiProcessModel``,
    ``PyInPort``, ``PyOutPort``, ``LavaPyType``, ``LoihiProtocol``, ``CPU``, ``implements``,
    ``requires``, ``tag``; Lava's LIF models ``PyLifModelBitAcc``, ``PyLifResetModelBitAcc``,
    ``PyTernLifModelFixed``; its Conv model ``PyConvModelFixed`` and ``conv_utils``
    (``lava.proc.conv.utils``).
    """
    require_lava()
    assert _LAVA is not None
    return _LAVA


_LAVA_DL: Optional[types.SimpleNamespace] = None


def import_lava_dl() -> types.SimpleNamespace:
    """Namespace with ``netx`` and ``slayer`` from lava-dl (imported lazily)."""
    global _LAVA_DL
    require_lava()
    if _LAVA_DL is None:
        install_dataclass_shim()
        from lava.lib.dl import netx, slayer

        _LAVA_DL = types.SimpleNamespace(netx=netx, slayer=slayer)
    return _LAVA_DL
