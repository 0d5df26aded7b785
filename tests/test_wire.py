"""grader.worker.wire: what the judge accepts from the worker is plain data, decoded without running code."""

from __future__ import annotations

import json
import math
import struct

import pytest
import torch

from grader.worker import wire


def round_trip(value):
    frame = wire.pack({"v": value})
    (size,) = struct.unpack(">Q", frame[:8])
    return wire.unpack(frame[8:8 + size], frame[8 + size:])["v"]


class Sneaky(torch.Tensor):
    """A Tensor subclass whose comparisons always say yes, as a forger would send it."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.allclose, torch.equal):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})


class Zero(float):
    def __sub__(self, other):
        return 0.0


def test_tensors_come_back_as_plain_tensors_with_their_values():
    for t in (torch.randn(3, 4), torch.arange(5), torch.tensor(2.5), torch.zeros(0, 10), torch.tensor([True, False])):
        back = round_trip(t)
        assert type(back) is torch.Tensor and back.dtype == t.dtype and torch.equal(back, t)
    sneaky = round_trip(torch.randn(4).as_subclass(Sneaky))
    assert type(sneaky) is torch.Tensor and not torch.equal(sneaky, sneaky + 1)


def test_numbers_and_containers_keep_their_kind_and_subclasses_become_descriptions():
    assert round_trip((1, 2.5, "x", None, True)) == (1, 2.5, "x", None, True)
    assert math.isnan(round_trip(float("nan"))) and round_trip(float("-inf")) == -math.inf
    fake = round_trip(Zero(0.7))
    assert isinstance(fake, wire.Opaque) and fake.type_name.endswith("Zero") and not isinstance(fake, float)
    assert round_trip({"a": [1, {"b": 2}]}) == {"a": [1, {"b": 2}]}


@pytest.mark.parametrize("body, blobs", [
    ({"$": "tensor", "dtype": "float32", "shape": [2], "blob": 0}, [b"\0" * 7]),  # bytes do not match the shape
    ({"$": "tensor", "dtype": "object", "shape": [1], "blob": 0}, [b"\0" * 8]),  # no such dtype
    ({"$": "tensor", "dtype": "float32", "shape": [1], "blob": 3}, [b"\0" * 4]),  # no such blob
    ({"$": "pickle", "data": "gASV"}, []),  # an unknown tag
    ({"$": "float", "repr": "1e9999"}, []),  # only nan and infinities are spelt out
])
def test_malformed_frames_are_refused(body, blobs):
    header = json.dumps({"body": body, "blobs": [len(b) for b in blobs]}).encode()
    with pytest.raises(wire.WireError):
        wire.unpack(header, b"".join(blobs))


def test_a_frame_larger_than_the_limit_is_refused_before_it_is_read():
    import os

    read, write = os.pipe()
    os.write(write, struct.pack(">Q", 10**12))
    os.close(write)
    with pytest.raises(wire.WireError):
        wire.receive(read, limit=1000)
    os.close(read)
