"""A restricted unpickler for data pickles: dicts, lists, tuples, strings, numbers and numeric numpy arrays only.

The Isharah challenge kit ships its keypoints as a pickle (``dict id -> {'keypoints': float array}``); a pickle can
run any code while it loads, so slsdk never hands an untrusted one to :func:`pickle.load`. :func:`load_data_pickle`
resolves no global but the few a numpy array's pickle names, each replaced by a checked stand-in:

* ``numpy.core.multiarray._reconstruct`` / ``numpy._core.multiarray._reconstruct`` (``ndarray.__reduce__``, protocols
  2-5): only ``(numpy.ndarray, (0,), b'b')``; the array's state is checked (a numeric dtype, a shape whose size times
  the item size is the length of its bytes) before numpy's ``__setstate__`` sees it,
* ``numpy.ndarray`` (only as ``_reconstruct``'s first argument), ``numpy.dtype`` (numeric type codes only: bool,
  integers, floats, complex; never object, string, void or structured),
* ``numpy.core.multiarray.scalar`` / ``numpy._core.multiarray.scalar`` (a numeric numpy scalar),
* ``numpy.core.numeric._frombuffer`` / ``numpy._core.numeric._frombuffer`` (protocol 5 arrays, in-band buffers),
* ``_codecs.encode`` with ``latin1`` and ``bytes()`` without arguments (protocol 2 writes bytes as text, and
  empty bytes as that call).

Any other global, a persistent id or an object of another type is a :class:`PickleRefused` naming the file and the
global, raised before anything of it runs; the file is bounded (``max_bytes``) and every array's memory is the size
of its bytes in the file.
"""
from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np

from slsdk.errors import SlsdkError

__all__ = ["PickleRefused", "load_data_pickle", "MAX_DATA_PICKLE_BYTES", "NUMERIC_KINDS"]

MAX_DATA_PICKLE_BYTES = 32 << 30     # 32 GiB: the kit's Isharah-2000 pickles are a few GB
NUMERIC_KINDS = frozenset("biufc")   # bool, signed / unsigned integers, floats, complex
_MAX_NODES = 50_000_000               # containers' items visited (shared references counted at every use)
_MAX_DEPTH = 32


class PickleRefused(SlsdkError, ValueError):
    """A pickle that holds something other than plain data (or is not a readable pickle); names the file."""


class _NdarrayName:
    """What ``numpy.ndarray`` resolves to: a marker accepted only as ``_reconstruct``'s first argument."""


class _DType:
    """A checked ``numpy.dtype(code, align, copy)`` call; its BUILD state may only set the byte order."""

    def __init__(self, source: Path, code, *args):
        if not isinstance(code, str) or len(code) > 8:
            raise PickleRefused(f"{source}: refused: a dtype spelled {code!r:.40}; only numeric arrays are read")
        try:
            dt = np.dtype(code)
        except TypeError:
            raise PickleRefused(f"{source}: refused: unknown dtype {code!r}") from None
        if dt.kind not in NUMERIC_KINDS or dt.fields is not None or dt.subdtype is not None:
            raise PickleRefused(f"{source}: refused: an array of dtype {dt} (only numbers: bool, integers, floats, "
                                "complex); nothing was executed")
        self.source, self.dtype = source, dt

    def __setstate__(self, state):
        # numpy writes (version, byteorder, subarray, names, fields, elsize, alignment, flags)
        if not (isinstance(state, tuple) and len(state) in (8, 9) and state[1] in ("<", ">", "|", "=")
                and state[2] is None and state[3] is None and state[4] is None):
            raise PickleRefused(f"{self.source}: refused: a dtype state {state!r:.80} that is not a plain number "
                                "type's")
        if state[1] in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(state[1])


def _shape(source: Path, shape) -> tuple[int, ...]:
    if not isinstance(shape, tuple) or len(shape) > 32 or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise PickleRefused(f"{source}: refused: array shape {shape!r:.80} is not a tuple of sizes")
    return shape


def _from_bytes(source: Path, raw, dtype: np.dtype, shape: tuple[int, ...], order: str) -> np.ndarray:
    if not isinstance(raw, (bytes, bytearray)):
        raise PickleRefused(f"{source}: refused: array data of type {type(raw).__name__}, expected bytes")
    n = math.prod(shape)
    if n * dtype.itemsize != len(raw):
        raise PickleRefused(f"{source}: refused: an array of shape {shape} and dtype {dtype} needs "
                            f"{n * dtype.itemsize} bytes, its data has {len(raw)}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order=order).copy()


class _ArrayState:
    """What ``_reconstruct(ndarray, (0,), b'b')`` returns: its BUILD state (checked) becomes :attr:`array`."""

    def __init__(self, source: Path):
        self.source, self.array = source, None

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1 and isinstance(state[2], _DType)
                and isinstance(state[3], bool)):
            raise PickleRefused(f"{self.source}: refused: an array state that is not a numeric array's "
                                f"(version, shape, dtype, fortran, bytes); got {type(state).__name__}")
        shape = _shape(self.source, state[1])
        self.array = _from_bytes(self.source, state[4], state[2].dtype, shape, "F" if state[3] else "C")


class _Restricted(pickle.Unpickler):
    def __init__(self, file, source: Path):
        super().__init__(file)
        self.source = source

    def _reconstruct(self, subtype, shape, code):
        if subtype is not _NdarrayName or shape != (0,) or code not in (b"b", "b"):
            raise PickleRefused(f"{self.source}: refused: _reconstruct called other than numpy arrays call it")
        return _ArrayState(self.source)

    def _scalar(self, dtype, raw=None):
        if not isinstance(dtype, _DType):
            raise PickleRefused(f"{self.source}: refused: a numpy scalar of a non-numeric type")
        return _from_bytes(self.source, raw, dtype.dtype, (), "C")[()]

    def _frombuffer(self, buf, dtype, shape, order="C"):
        if not isinstance(dtype, _DType) or order not in ("C", "F"):
            raise PickleRefused(f"{self.source}: refused: _frombuffer called other than numpy arrays call it")
        return _from_bytes(self.source, buf, dtype.dtype, _shape(self.source, shape), order)

    def _encode(self, text, encoding="utf-8"):
        if not isinstance(text, str) or encoding != "latin1":
            raise PickleRefused(f"{self.source}: refused: _codecs.encode called other than protocol 2 arrays call it")
        return text.encode("latin1")

    def _empty_bytes(self, *args):
        if args:
            raise PickleRefused(f"{self.source}: refused: bytes() called other than protocol 2 calls it (b'')")
        return b""

    def find_class(self, module, name):
        if module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            if name == "_reconstruct":
                return self._reconstruct
            if name == "scalar":
                return self._scalar
        if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
            return self._frombuffer
        if module == "numpy" and name == "ndarray":
            return _NdarrayName
        if module == "numpy" and name == "dtype":
            return lambda *a: _DType(self.source, *a)
        if module == "_codecs" and name == "encode":
            return self._encode
        if module in ("__builtin__", "builtins") and name == "bytes":
            return self._empty_bytes
        raise PickleRefused(f"{self.source}: refused: the pickle calls {module}.{name}; only dicts, lists, tuples, "
                            "strings, numbers and numeric numpy arrays are read (nothing was executed)")

    def persistent_load(self, pid):
        raise PickleRefused(f"{self.source}: refused: the pickle holds a persistent reference; nothing was executed")


def _plain(obj, source: Path):
    """``obj`` with every array stand-in replaced by its array; refuses any other type (iterative, bounded)."""
    budget = _MAX_NODES

    def fix(o, depth):
        nonlocal budget
        if isinstance(o, (str, bytes, int, float, complex, bool, type(None), np.ndarray, np.generic)):
            if isinstance(o, np.generic) and o.dtype.kind not in NUMERIC_KINDS:
                raise PickleRefused(f"{source}: refused: a numpy scalar of dtype {o.dtype}")
            return o
        if isinstance(o, _ArrayState):
            if o.array is None:
                raise PickleRefused(f"{source}: an array without its data (truncated pickle?)")
            return o.array
        if depth > _MAX_DEPTH:
            raise PickleRefused(f"{source}: refused: containers nested more than {_MAX_DEPTH} deep")
        if isinstance(o, (dict, list, tuple)):
            budget -= len(o)
            if budget < 0:
                raise PickleRefused(f"{source}: refused: more than {_MAX_NODES} items (shared references counted at "
                                    "every use)")
            if isinstance(o, dict):
                return {fix(k, depth + 1): fix(v, depth + 1) for k, v in o.items()}
            items = [fix(v, depth + 1) for v in o]
            return items if isinstance(o, list) else tuple(items)
        raise PickleRefused(f"{source}: refused: the pickle holds a {type(o).__name__}; only dicts, lists, tuples, "
                            "strings, numbers and numeric numpy arrays are read")

    return fix(obj, 0)


def load_data_pickle(path: str | Path, *, max_bytes: int = MAX_DATA_PICKLE_BYTES):
    """Unpickle ``path`` admitting only plain data (see the module docstring), without running anything else.

    Raises :class:`PickleRefused` (naming the file, and the global when one is the reason) for anything else, a
    file over ``max_bytes`` or a corrupt pickle; FileNotFoundError when it does not exist.
    """
    path = Path(path)
    if not path.is_file():
        if path.exists():
            raise PickleRefused(f"{path}: is not a file")
        raise FileNotFoundError(f"pickle not found: {path}")
    size = path.stat().st_size
    if size > max_bytes:
        raise PickleRefused(f"{path}: refused: {size} bytes, more than the {max_bytes} a data pickle may have here")
    with path.open("rb") as f:
        head = f.read(2)
        if len(head) < 2 or head[0] != 0x80 or head[1] > pickle.HIGHEST_PROTOCOL:
            raise PickleRefused(f"{path}: not a pickle of protocol 2 to {pickle.HIGHEST_PROTOCOL} (starts with "
                                f"{head!r})")
        f.seek(0)
        try:
            obj = _Restricted(f, path).load()
        except PickleRefused:
            raise
        except RecursionError:
            raise PickleRefused(f"{path}: refused: nested too deep") from None
        except Exception as e:  # noqa: BLE001 - truncated / corrupt pickles raise many types
            raise PickleRefused(f"{path}: cannot read the pickle ({type(e).__name__}: "
                                f"{str(e).splitlines()[0][:200] if str(e) else ''})") from None
    try:
        return _plain(obj, path)
    except RecursionError:
        raise PickleRefused(f"{path}: refused: nested too deep") from None
