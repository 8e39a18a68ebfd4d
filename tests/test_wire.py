"""The grader's wire format: plain data survives the round trip, nothing else gets through.

What a kernel sends is decoded in the grader's process, so decoding must never run code,
never produce an object whose comparisons lie, and reject malformed messages cleanly.
"""
from __future__ import annotations

import json
import math
import struct

import pytest
import torch

from autograder import wire


def roundtrip(value, **kw):
    return wire.loads(wire.dumps(value, **kw))["value"]


def test_plain_values_survive():
    value = {"a": [1, 2.5, None, True, "x"], 3: (torch.Size([2, 3]), torch.float64, torch.device("cpu")),
             (1, 2): {1, 2}, "c": 1 + 2j, "s": slice(1, None, 2), "e": ...}
    assert roundtrip(value) == value
    assert math.isnan(roundtrip(float("nan"))) and roundtrip(float("-inf")) == float("-inf")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64,
                                   torch.uint8, torch.bool, torch.complex64])
def test_tensors_survive_bit_for_bit(dtype):
    t = (torch.randn(3, 4, 5) * 10).to(dtype)
    back = roundtrip({"t": t, "view": t[:, 1], "empty": t[:0]})
    assert torch.equal(back["t"], t) and back["t"].dtype == dtype
    assert torch.equal(back["view"], t[:, 1]) and back["empty"].shape == (0, 4, 5)


def test_meta_tensors_keep_shape_and_dtype():
    back = roundtrip(torch.empty(4096, 9216, device="meta"))
    assert back.device.type == "meta" and back.shape == (4096, 9216)


def test_generators_travel_as_a_copy_of_their_state():
    g = torch.Generator().manual_seed(5)
    back = roundtrip(g)
    assert torch.equal(torch.rand(3, generator=back), torch.rand(3, generator=g))


class Liar(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


class LyingTensor(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.equal, torch.allclose, torch.Tensor.equal):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})


def test_subclasses_arrive_as_the_plain_values_they_hold():
    notes = []
    back = wire.loads(wire.dumps([Liar(0), torch.zeros(3).as_subclass(LyingTensor), torch.nn.Parameter(torch.ones(2))],
                                 on_note=notes.append))["value"]
    assert type(back[0]) is int and back[0] == 0 and back[0] != 5
    assert type(back[1]) is torch.Tensor and not torch.equal(back[1], torch.ones(3))
    assert type(back[2]) is torch.Tensor and not back[2].requires_grad
    assert len(notes) == 2  # the int and the tensor subclass (a Parameter is ordinary)


def test_objects_become_handles_or_are_refused():
    with pytest.raises(wire.WireError):
        wire.dumps(object())
    data = wire.dumps([object()], on_other=lambda o: {"$": "handle", "id": 1, "type": "builtins.object"})
    assert wire.loads(data, make_handle=lambda hid, t: ("handle", hid, t))["value"] == [("handle", 1, "builtins.object")]
    with pytest.raises(wire.WireError):  # a handle where none is expected
        wire.loads(data)


def _message(header: dict, body: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return wire.MAGIC + struct.pack("<Q", len(text)) + text + body


@pytest.mark.parametrize("value", [
    {"$": "tensor", "dtype": "float32", "shape": [4], "offset": 0, "nbytes": 16},   # bytes missing
    {"$": "tensor", "dtype": "float32", "shape": [4], "offset": 0, "nbytes": 8},    # size mismatch
    {"$": "tensor", "dtype": "object", "shape": [1], "offset": 0, "nbytes": 8},     # no such dtype
    {"$": "tensor", "dtype": "float32", "shape": [-1], "offset": 0, "nbytes": 0},
    {"$": "pickle", "data": "gASVAAAA"},
    {"$": "dict", "items": [[[1], 2]]},                                             # unhashable key
    {"$": "generator", "state": [1, 2, 3]},
])
def test_malformed_messages_are_refused(value):
    with pytest.raises(wire.WireError):
        wire.loads(_message({"value": value}, b"\0" * 8))


def test_truncated_deep_and_oversized_messages_are_refused():
    good = wire.dumps(torch.ones(10))
    with pytest.raises(wire.WireError):
        wire.loads(good[:-4])
    with pytest.raises(wire.WireError):
        wire.loads(b"not a message at all")
    deep = v = []
    for _ in range(wire.MAX_DEPTH + 5):
        v.append([])
        v = v[0]
    with pytest.raises(wire.WireError):
        wire.loads(_message({"value": deep}))
    with pytest.raises(wire.WireError):
        wire.loads(good, max_bytes=10)


def test_overlapping_tensor_entries_cannot_multiply_a_body():
    """A forged reply: 1000 entries over one shared 1 MiB body would decode to 1 GB."""
    n = 1 << 20
    entry = {"$": "tensor", "dtype": "uint8", "shape": [n], "offset": 0, "nbytes": n}
    header = json.dumps({"value": {"$": "tuple", "items": [entry] * 1000}}).encode()
    forged = wire.MAGIC + struct.pack("<Q", len(header)) + header + bytes(n)
    with pytest.raises(wire.WireError, match="more bytes than it may carry"):
        wire.loads(forged, max_bytes=1 << 30)
    # what an honest encoder sends (entries side by side) decodes in full, up to the body's size
    honest = wire.loads(wire.dumps((torch.ones(1000), torch.zeros(3, 5, dtype=torch.int64))), max_bytes=1 << 20)
    assert honest["value"][0].sum() == 1000 and honest["value"][1].shape == (3, 5)
