"""Plain data between the judge and the worker: frames of JSON with tensors as raw buffers.

A frame is an 8-byte big-endian length, a JSON header of that length, then the raw bytes of every
tensor it names, back to back. Values are JSON values plus a few tagged objects:

    {"$": "tensor", "dtype": "float32", "shape": [8, 10], "blob": 0, "grad": true, "type": "torch.Tensor"}
    {"$": "tuple", "items": [...]}        {"$": "dict", "items": [[key, value], ...]}
    {"$": "object", "type": "numpy.float64", "repr": "0.73", "number": 0.73}

``encode`` turns anything into such a value (what it cannot carry becomes an "object" that only
describes it); ``decode`` rebuilds only plain Python values, ``torch.Tensor`` (always exactly that
class, from bytes, never from pickle) and ``Opaque`` (a description of an object the worker held).
No code is ever run to decode a frame. This module is shared by the judge and the worker and
imports nothing but the standard library and torch.
"""

from __future__ import annotations

import functools
import json
import math
import os
import struct

DTYPE_NAMES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")
MAX_FRAME = 512 * 2**20  # bytes of one frame: the end-to-end run sends MNIST's training split (47 MB)
MAX_DEPTH = 32
REPR_LIMIT = 200


class WireError(Exception):
    """A frame that is not well-formed: from the worker, proof that its replies cannot be trusted."""


class Opaque:
    """An object the worker held that plain data cannot carry: its type's name, its repr, its number if any."""

    def __init__(self, type_name: str, text: str, number: float | None = None):
        self.type_name, self.text, self.number = type_name, text, number

    def __repr__(self) -> str:
        return self.text

    def __eq__(self, other) -> bool:
        return isinstance(other, Opaque) and (self.type_name, self.text) == (other.type_name, other.text)

    __hash__ = None


@functools.lru_cache(maxsize=None)
def dtypes() -> dict:
    """name -> torch dtype; torch is imported on first use, so that the judge can start the worker before it."""
    import torch

    return {name: getattr(torch, name) for name in DTYPE_NAMES}


def dtype_name(dtype) -> str | None:
    return next((name for name, d in dtypes().items() if d == dtype), None)


# ---------------------------------------------------------------------------------------------------
# Encoding (either side)


def _tensor(value, blobs: list) -> dict:
    import torch

    t = value.detach()
    dtype = dtype_name(t.dtype)
    if dtype is None or t.is_sparse or t.is_quantized or t.device.type == "meta":
        return {"$": "object", "type": f"torch.Tensor ({t.dtype})", "repr": f"tensor of shape {tuple(t.shape)}"}
    data = torch.Tensor.contiguous(torch.Tensor.cpu(torch.Tensor.as_subclass(t, torch.Tensor)))
    raw = data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b""
    blobs.append(raw)
    kind = type(value)
    return {"$": "tensor", "dtype": dtype, "shape": list(data.shape), "blob": len(blobs) - 1,
            "grad": bool(value.requires_grad), "type": f"{kind.__module__}.{kind.__qualname__}"}


def _describe(value) -> dict:
    kind = type(value)
    try:
        text = repr(value)[:REPR_LIMIT]
    except Exception:
        text = f"<{kind.__name__}>"
    number = None
    try:
        if hasattr(value, "__float__"):
            number = float(value)
            number = number if isinstance(number, float) and type(number) is float else None
    except Exception:
        number = None
    return {"$": "object", "type": f"{kind.__module__}.{kind.__qualname__}", "repr": text, "number": number}


def encode(value, blobs: list, depth: int = 0):
    """``value`` as a JSON-ready value; tensor bytes are appended to ``blobs``."""
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        return value if math.isfinite(value) else {"$": "float", "repr": repr(value)}
    if depth > MAX_DEPTH:
        return _describe(value)
    if kind is list:
        return [encode(v, blobs, depth + 1) for v in value]
    if kind is tuple:
        return {"$": "tuple", "items": [encode(v, blobs, depth + 1) for v in value]}
    if kind is dict and all(type(k) is str for k in value):
        return {"$": "dict", "items": [[k, encode(v, blobs, depth + 1)] for k, v in value.items()]}
    import torch

    if isinstance(value, torch.Tensor):
        return _tensor(value, blobs)
    if isinstance(value, torch.dtype):
        return {"$": "dtype", "name": dtype_name(value) or str(value)}
    return _describe(value)


def pack(message: dict) -> bytes:
    blobs: list[bytes] = []
    header = json.dumps({"body": encode(message, blobs), "blobs": [len(b) for b in blobs]}).encode()
    return struct.pack(">Q", len(header)) + header + b"".join(blobs)


# ---------------------------------------------------------------------------------------------------
# Decoding: what the judge accepts


def _decode(value, blobs: list[bytes], depth: int = 0):
    if depth > MAX_DEPTH:
        raise WireError("nested too deeply")
    if value is None or type(value) in (bool, int, str):
        return value
    if type(value) is float:
        return value
    if type(value) is list:
        return [_decode(v, blobs, depth + 1) for v in value]
    if type(value) is not dict:
        raise WireError(f"unexpected {type(value).__name__}")
    tag = value.get("$")
    if tag == "float":
        text = value.get("repr")
        if text not in ("nan", "inf", "-inf"):
            raise WireError("bad float")
        return float(text)
    if tag == "tuple":
        return tuple(_decode(v, blobs, depth + 1) for v in _items(value))
    if tag == "dict":
        items = _items(value)
        if not all(type(p) is list and len(p) == 2 and type(p[0]) is str for p in items):
            raise WireError("bad dict")
        return {k: _decode(v, blobs, depth + 1) for k, v in items}
    if tag == "dtype":
        return dtypes().get(value.get("name")) or Opaque("torch.dtype", str(value.get("name"))[:REPR_LIMIT])
    if tag == "object":
        number = value.get("number")
        return Opaque(str(value.get("type"))[:REPR_LIMIT], str(value.get("repr"))[:REPR_LIMIT],
                      number if type(number) is float else None)
    if tag == "tensor":
        return _decode_tensor(value, blobs)
    raise WireError(f"unknown tag {tag!r}")


def _items(value: dict) -> list:
    items = value.get("items")
    if type(items) is not list:
        raise WireError("bad items")
    return items


def _decode_tensor(value: dict, blobs: list[bytes]):
    import torch

    dtype, shape, index = dtypes().get(value.get("dtype")), value.get("shape"), value.get("blob")
    if dtype is None or type(shape) is not list or not all(type(s) is int and s >= 0 for s in shape):
        raise WireError("bad tensor header")
    if type(index) is not int or not 0 <= index < len(blobs):
        raise WireError("bad tensor blob")
    raw = blobs[index]
    count = math.prod(shape)
    itemsize = torch.empty((), dtype=dtype).element_size()
    if count * itemsize != len(raw):
        raise WireError("tensor size does not match its bytes")
    tensor = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype) if raw else torch.empty(0, dtype=dtype)
    tensor = tensor.reshape(shape).clone()
    assert type(tensor) is torch.Tensor
    if value.get("grad") is True and tensor.is_floating_point():
        tensor.requires_grad_(True)
    return tensor


def tensor_type(value: dict) -> str:
    return str(value.get("type", "torch.Tensor"))


def unpack(header: bytes, payload: bytes):
    try:
        head = json.loads(header)
    except (ValueError, UnicodeDecodeError) as err:
        raise WireError(f"not JSON: {err}") from None
    if type(head) is not dict or type(head.get("blobs")) is not list:
        raise WireError("bad frame")
    sizes = head["blobs"]
    if not all(type(s) is int and s >= 0 for s in sizes) or sum(sizes) != len(payload):
        raise WireError("blob sizes do not add up")
    blobs, start = [], 0
    for size in sizes:
        blobs.append(payload[start:start + size])
        start += size
    return _decode(head.get("body"), blobs)


# ---------------------------------------------------------------------------------------------------
# Frames on file descriptors


def _read_exactly(fd: int, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def send(fd: int, message: dict) -> None:
    view = memoryview(pack(message))
    while view:
        view = view[os.write(fd, view):]


def receive(fd: int, limit: int = MAX_FRAME):
    """The next frame's message; WireError when it is malformed or larger than ``limit``."""
    (size,) = struct.unpack(">Q", _read_exactly(fd, 8))
    if size > limit:
        raise WireError(f"a header of {size} bytes")
    header = _read_exactly(fd, size)
    try:
        sizes = json.loads(header).get("blobs", [])
        total = sum(s for s in sizes if type(s) is int)
    except (ValueError, AttributeError, UnicodeDecodeError) as err:
        raise WireError(f"not JSON: {err}") from None
    if total > limit:
        raise WireError(f"a frame of {total} bytes")
    return unpack(header, _read_exactly(fd, total))
