"""The wire format between the grader and a student's kernel: plain data only.

A message is one file: an 8-byte magic, the length of a JSON header (8 bytes, little
endian), the header, then raw tensor bytes. The header is a tree of JSON values in which
everything JSON cannot say is a small object with a "$" key:

    {"$": "tuple", "items": [...]}        tuples (JSON has only lists)
    {"$": "dict", "items": [[k, v], ...]} every dict (keys may be ints, tuples, ...)
    {"$": "tensor", "dtype": "float32", "shape": [2, 3], "offset": 0, "nbytes": 24}
    {"$": "meta", "dtype": "float32", "shape": [4096, 9216]}   a tensor on the meta device
    {"$": "size", "items": [2, 3]}        torch.Size
    {"$": "dtype", "name": "float64"}     torch.dtype
    {"$": "device", "name": "cpu"}        torch.device
    {"$": "float", "value": "nan"}        nan, inf, -inf
    {"$": "complex", "re": 1.0, "im": 0.0}
    {"$": "slice", "items": [start, stop, step]}, {"$": "ellipsis"}, {"$": "set", "items": [...]}
    {"$": "generator", "state": {tensor}} a CPU torch.Generator, sent as a copy of its state
    {"$": "handle", "id": 7, "type": "mymodule.LeNet5"}   an object that stays in the kernel

Why not pickle: unpickling runs code chosen by whoever wrote the bytes. Why not torch.save:
it is pickle. Decoding here can only ever produce None, bool, int, float, complex, str,
list, tuple, dict, set, slice, Ellipsis, torch.Size, torch.dtype, a fresh CPU torch.Generator,
plain torch.Tensor (never
a subclass: an object whose __eq__ or __torch_function__ lies cannot cross) and the
handles the caller's `make_handle` builds. The decoder checks sizes, depth, dtypes and
buffer bounds and raises WireError on anything else.

This module uses only the standard library and torch: the grader sends its source text
into the sandboxed kernel, which cannot import the autograder package.
"""
import json
import math
import struct

import torch

MAGIC = b"DLCWIRE1"
MAX_DEPTH = 64
MAX_ITEMS = 2_000_000  # containers and scalars in one message
DTYPES = {
    "float64": torch.float64, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
    "int64": torch.int64, "int32": torch.int32, "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8,
    "bool": torch.bool, "complex64": torch.complex64, "complex128": torch.complex128,
}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}


class WireError(ValueError):
    """A message that is not well-formed plain data."""


class Encoder:
    """Turns a tree of plain values into (header, buffers). `on_other(obj)` is called for
    anything that is not plain data and must return a JSON-able replacement (a handle)."""

    def __init__(self, on_other=None, on_note=None, copy_generators=True):
        self.copy_generators = copy_generators
        self.buffers = []
        self.offset = 0
        self.on_other = on_other
        self.on_note = on_note or (lambda text: None)

    def encode(self, value, depth=0):
        if depth > MAX_DEPTH:
            raise WireError("value nested too deeply to send")
        t = type(value)
        if value is None or t is bool or t is str:
            return value
        if t is int:
            return value
        if t is float:
            return value if math.isfinite(value) else {"$": "float", "value": repr(value)}
        if isinstance(value, torch.Tensor):
            return self._tensor(value)
        if t is torch.Generator and value.device.type == "cpu" and self.copy_generators:
            # a copy of its state: the receiver's generator starts where this one stands
            return {"$": "generator", "state": self._tensor(value.get_state())}
        if t is torch.Size:
            return {"$": "size", "items": [int(v) for v in value]}
        if t is torch.device:
            return {"$": "device", "name": str(value)}
        if t is torch.dtype:
            return {"$": "dtype", "name": DTYPE_NAMES.get(value, str(value))}
        if t is list:
            return [self.encode(v, depth + 1) for v in value]
        if t is tuple:
            return {"$": "tuple", "items": [self.encode(v, depth + 1) for v in value]}
        if t is dict or t.__name__ == "OrderedDict" and isinstance(value, dict):
            return {"$": "dict", "items": [[self.encode(k, depth + 1), self.encode(v, depth + 1)]
                                           for k, v in dict.items(value)]}
        if t is set or t is frozenset:
            return {"$": "set", "items": [self.encode(v, depth + 1) for v in value]}
        if t is complex:
            return {"$": "complex", "re": self.encode(value.real), "im": self.encode(value.imag)}
        if t is slice:
            return {"$": "slice", "items": [self.encode(value.start), self.encode(value.stop), self.encode(value.step)]}
        if value is Ellipsis:
            return {"$": "ellipsis"}
        # subclasses of plain types: sent as their plain value, with a note (an int subclass
        # whose __eq__ always says True arrives as the integer it really holds)
        if isinstance(value, int):  # (bool cannot be subclassed)
            self.on_note(f"a {t.__name__} (subclass of int) was sent as a plain int")
            return int.__int__(value)
        if isinstance(value, float):
            self.on_note(f"a {t.__name__} (subclass of float) was sent as a plain float")
            return self.encode(float.__float__(value), depth)
        if isinstance(value, str):
            self.on_note(f"a {t.__name__} (subclass of str) was sent as a plain str")
            return str.__str__(value)
        if type(value).__module__ == "numpy":
            return self._numpy(value, depth)
        if self.on_other is None:
            raise WireError(f"cannot send an object of type {t.__module__}.{t.__qualname__}")
        return self.on_other(value)

    def _numpy(self, value, depth):
        import numpy as np  # only when a student returns NumPy values

        if isinstance(value, np.ndarray):
            return self._tensor(torch.from_numpy(np.ascontiguousarray(value)))
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, np.integer):
            return int(value)
        if isinstance(value, np.floating):
            return self.encode(float(value), depth)
        return self.on_other(value)

    def _tensor(self, value):
        plain = _plain_tensor(value)
        if type(value) not in (torch.Tensor, torch.nn.Parameter):
            self.on_note(f"a {type(value).__name__} (subclass of torch.Tensor) was sent as a plain tensor")
        name = DTYPE_NAMES.get(plain.dtype)
        if name is None:
            raise WireError(f"cannot send a tensor of dtype {plain.dtype}")
        shape = [int(s) for s in plain.shape]
        if plain.device.type == "meta":
            return {"$": "meta", "dtype": name, "shape": shape}
        data = plain.detach().to("cpu").contiguous()
        if data.dtype == torch.bfloat16:
            raw = data.view(torch.int16).numpy().tobytes()
        else:
            raw = data.numpy().tobytes()
        entry = {"$": "tensor", "dtype": name, "shape": shape, "offset": self.offset, "nbytes": len(raw)}
        self.buffers.append(raw)
        self.offset += len(raw)
        return entry


def _plain_tensor(value):
    """The tensor's data as a plain torch.Tensor, bypassing any __torch_function__ override."""
    with torch._C.DisableTorchFunctionSubclass():
        plain = torch.Tensor.as_subclass(value, torch.Tensor)
        if plain.requires_grad:
            plain = plain.detach()
        if plain.is_conj():
            plain = plain.resolve_conj()
        if plain.is_neg():
            plain = plain.resolve_neg()
    return plain


def dumps(value, on_other=None, on_note=None, extra=None, copy_generators=True) -> bytes:
    """Encode `value` (and optional extra header fields) into one message. With
    `copy_generators=False` a generator goes to `on_other` (a handle) instead of as a copy."""
    enc = Encoder(on_other, on_note, copy_generators)
    header = {"value": enc.encode(value)}
    if extra:
        header.update(extra)
    text = json.dumps(header, allow_nan=False, separators=(",", ":")).encode()
    return MAGIC + struct.pack("<Q", len(text)) + text + b"".join(enc.buffers)


class Decoder:
    """Checks and rebuilds a message. `make_handle(id, type)` builds the caller's handle objects."""

    def __init__(self, body: memoryview, make_handle, max_decoded: int | None = None):
        self.body = body
        self.make_handle = make_handle
        self.items = 0
        # every tensor entry is copied out of the body, and a forged message may let entries
        # overlap: count the bytes after expansion. An honest encoder never overlaps entries,
        # so what it sends decodes to at most the body's own size; 1000 entries over one
        # 48 MiB body are refused at the second.
        self.decoded_left = len(body) if max_decoded is None else min(len(body), max_decoded)

    def decode(self, node, depth=0):
        self.items += 1
        if self.items > MAX_ITEMS:
            raise WireError("message holds too many values")
        if depth > MAX_DEPTH:
            raise WireError("message nested too deeply")
        if node is None or isinstance(node, (bool, int, str)):
            return node
        if isinstance(node, float):
            return node
        if isinstance(node, list):
            return [self.decode(v, depth + 1) for v in node]
        if not isinstance(node, dict) or not isinstance(node.get("$"), str):
            raise WireError("malformed value in message")
        kind = node["$"]
        if kind == "tuple":
            return tuple(self.decode(v, depth + 1) for v in _list(node, "items"))
        if kind == "dict":
            out = {}
            for pair in _list(node, "items"):
                if not isinstance(pair, list) or len(pair) != 2:
                    raise WireError("malformed dict entry")
                key = self.decode(pair[0], depth + 1)
                try:
                    out[key] = self.decode(pair[1], depth + 1)
                except TypeError:
                    raise WireError("unhashable dict key") from None
            return out
        if kind == "set":
            try:
                return set(self.decode(v, depth + 1) for v in _list(node, "items"))
            except TypeError:
                raise WireError("unhashable set item") from None
        if kind == "tensor":
            return self._tensor(node)
        if kind == "meta":
            dtype, shape = _dtype(node), _shape(node)
            return torch.empty(shape, dtype=dtype, device="meta")
        if kind == "generator":
            state = self.decode(node.get("state"), depth + 1)
            if not isinstance(state, torch.Tensor) or state.dtype != torch.uint8 or state.dim() != 1:
                raise WireError("malformed generator state")
            gen = torch.Generator()
            try:
                gen.set_state(state)
            except RuntimeError:
                raise WireError("malformed generator state") from None
            return gen
        if kind == "size":
            return torch.Size(_shape(node, "items"))
        if kind == "device":
            name = node.get("name")
            if not isinstance(name, str) or len(name) > 20:
                raise WireError("malformed device")
            try:
                return torch.device(name)
            except RuntimeError:
                raise WireError("malformed device") from None
        if kind == "dtype":
            return _dtype({"dtype": node.get("name")})
        if kind == "float":
            value = node.get("value")
            if value not in ("nan", "inf", "-inf"):
                raise WireError("malformed float")
            return float(value)
        if kind == "complex":
            return complex(_number(self.decode(node.get("re"), depth + 1)), _number(self.decode(node.get("im"), depth + 1)))
        if kind == "slice":
            items = _list(node, "items")
            if len(items) != 3:
                raise WireError("malformed slice")
            return slice(*(self.decode(v, depth + 1) for v in items))
        if kind == "ellipsis":
            return Ellipsis
        if kind == "handle":
            hid, tname = node.get("id"), node.get("type")
            if type(hid) is not int or not isinstance(tname, str):
                raise WireError("malformed handle")
            return self.make_handle(hid, tname[:200])
        raise WireError(f"unknown value kind {kind[:40]!r}")

    def _tensor(self, node):
        dtype, shape = _dtype(node), _shape(node)
        offset, nbytes = node.get("offset"), node.get("nbytes")
        if type(offset) is not int or type(nbytes) is not int or offset < 0 or nbytes < 0:
            raise WireError("malformed tensor entry")
        numel = math.prod(shape)
        itemsize = torch.empty((), dtype=dtype).element_size()
        if numel * itemsize != nbytes or offset + nbytes > len(self.body):
            raise WireError("tensor bytes do not match its shape")
        self.decoded_left -= nbytes
        if self.decoded_left < 0:
            raise WireError("the tensors in this message add up to more bytes than it may carry")
        raw = bytearray(self.body[offset:offset + nbytes])
        if numel == 0:
            return torch.empty(shape, dtype=dtype)
        if dtype == torch.bfloat16:
            return torch.frombuffer(raw, dtype=torch.int16).view(torch.bfloat16).reshape(shape)
        return torch.frombuffer(raw, dtype=dtype).reshape(shape)


def _list(node, key):
    value = node.get(key)
    if not isinstance(value, list):
        raise WireError("malformed container")
    return value


def _dtype(node):
    dtype = DTYPES.get(node.get("dtype"))
    if dtype is None:
        raise WireError("unknown dtype")
    return dtype


def _shape(node, key="shape"):
    shape = node.get(key)
    if not isinstance(shape, list) or len(shape) > 16 or not all(type(s) is int and 0 <= s < 2 ** 40 for s in shape):
        raise WireError("malformed shape")
    return shape


def _number(value):
    if type(value) not in (int, float):
        raise WireError("malformed number")
    return value


def loads(data: bytes, make_handle=None, max_bytes: int | None = None) -> dict:
    """Decode one message; returns its header with "value" decoded.

    `max_bytes` bounds the message and, separately, the tensor bytes decoded from it (entries
    that share bytes are counted once each); without it, decoded tensors may not exceed the body.
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise WireError(f"message of {len(data)} bytes is over the limit of {max_bytes}")
    if len(data) < 16 or data[:8] != MAGIC:
        raise WireError("not a message (bad magic)")
    (length,) = struct.unpack("<Q", data[8:16])
    if length > len(data) - 16:
        raise WireError("truncated message")
    try:
        header = json.loads(bytes(data[16:16 + length]))
    except (ValueError, UnicodeDecodeError):
        raise WireError("message header is not JSON") from None
    if not isinstance(header, dict):
        raise WireError("message header is not an object")

    def no_handles(hid, tname):
        raise WireError("unexpected object handle")

    dec = Decoder(memoryview(data)[16 + length:], make_handle or no_handles, max_decoded=max_bytes)
    header["value"] = dec.decode(header.get("value"))
    return header
