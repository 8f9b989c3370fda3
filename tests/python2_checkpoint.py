"""Checkpoint files as Python 2 and PyTorch 0.2 wrote them (PyTorch's legacy format), for loading tests.

bearpaw/pytorch-pose's released stacked hourglass checkpoints were written that way (2017). This writer follows
Python 2 cPickle's protocol 2 where it differs from Python 3's: str as SHORT_BINSTRING, an int beyond 32 bits
with the text INT opcode (the parameter ids of PyTorch 0.2's optimiser states), Python 2 longs (torch.Size
entries, storage sizes) with LONG1, the memo numbered from 1, OrderedDict reduced to a list of pairs; tensors as
PyTorch 0.2 reduced them (torch._utils._rebuild_tensor of a storage saved by persistent id), followed by the
storages' bytes. tests/assets/hourglass/bearpaw_mean_file_2017.json records the opcodes of a real file of that
time, which `legacy_opcodes` of this writer's output must reproduce.
"""
from __future__ import annotations

import io
import pickle
import pickletools
import struct
from collections import OrderedDict
from typing import BinaryIO, Iterable

import torch

__all__ = ["Py2Long", "save_as_pytorch_0_2", "legacy_opcodes"]

_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_PROTOCOL_VERSION = 1001


class Py2Long(int):
    """An integer that Python 2 held as a `long`: pickled with LONG1 however small."""


class _Storage:
    def __init__(self, tensor: torch.Tensor, key: str):
        self.tensor, self.key = tensor, key


class _Python2Pickler(pickle._Pickler):
    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(self, f: BinaryIO, storage_type=None, location: str = "", keys: Iterable[str] = ()):
        super().__init__(f, protocol=2)
        self.storage_type, self.location, self.keys = storage_type, location, iter(keys)
        self.storages: list[_Storage] = []

    def memoize(self, obj):
        index = len(self.memo) + 1
        self.write(self.put(index))
        self.memo[id(obj)] = index, obj

    def save_int(self, obj):
        if isinstance(obj, Py2Long):
            encoded = pickle.encode_long(obj)
            self.write(pickle.LONG1 + bytes([len(encoded)]) + encoded)
        elif 0 <= obj <= 0xFF:
            self.write(pickle.BININT1 + struct.pack("<B", obj))
        elif 0 <= obj <= 0xFFFF:
            self.write(pickle.BININT2 + struct.pack("<H", obj))
        elif -0x80000000 <= obj <= 0x7FFFFFFF:
            self.write(pickle.BININT + struct.pack("<i", obj))
        else:
            self.write(pickle.INT + repr(obj).encode() + b"\n")

    def save_str(self, obj):
        data = obj.encode()
        self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        self.memoize(obj)

    dispatch[int] = save_int
    dispatch[Py2Long] = save_int
    dispatch[str] = save_str

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return "storage", self.storage_type, obj.key, self.location, Py2Long(obj.tensor.numel()), None
        return None

    def reducer_override(self, obj):
        if type(obj) is OrderedDict:
            return OrderedDict, ([[key, value] for key, value in obj.items()],)
        if isinstance(obj, torch.Tensor):
            tensor = obj.detach().contiguous()
            storage = _Storage(tensor, next(self.keys))
            self.storages.append(storage)
            return torch._utils._rebuild_tensor, (storage, 0, tuple(Py2Long(n) for n in tensor.shape),
                                                  tuple(Py2Long(n) for n in tensor.stride()))
        return NotImplemented


def save_as_pytorch_0_2(obj, f: BinaryIO, storage_type=torch.cuda.FloatStorage, location: str = "cuda:0",
                        storage_keys: Iterable[str] | None = None, long_size: int = 8) -> None:
    """torch.save(obj, f) as PyTorch 0.2 under Python 2 wrote it; every tensor float32, saved as a storage of
    `storage_type` on `location` (a GPU by default, as bearpaw's DataParallel training saved them) under the
    keys `storage_keys` (default: made-up object addresses)."""
    keys = storage_keys if storage_keys is not None else (str(94000000000000 + 64 * i) for i in range(1 << 40))
    for header in (_MAGIC_NUMBER, _PROTOCOL_VERSION):
        pickle.dump(header, f, protocol=2)
    _Python2Pickler(f).dump({"protocol_version": _PROTOCOL_VERSION,
                             "type_sizes": {"int": 4, "short": 2, "long": long_size}, "little_endian": True})
    pickler = _Python2Pickler(f, storage_type, location, keys)
    pickler.dump(obj)
    storages = sorted(pickler.storages, key=lambda s: s.key)
    _Python2Pickler(f).dump([s.key for s in storages])
    for storage in storages:
        f.write(struct.pack("<q", storage.tensor.numel()))
        f.write(storage.tensor.float().numpy().tobytes())


def legacy_opcodes(data: bytes) -> list:
    """The five pickles of a legacy-format file as [opcode name, argument] pairs, memo PUTs left out and GETs
    replaced by what they fetch (memo numbering differs between picklers), then the storages' bytes as hex."""
    stream = io.BytesIO(data)
    items = []
    for _ in range(5):
        memo, last = {}, None
        for opcode, arg, _ in pickletools.genops(stream):
            if opcode.name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[arg] = last
                continue
            last = memo[arg] if opcode.name in ("BINGET", "LONG_BINGET", "GET") else [opcode.name, arg]
            items.append(last)
    return items + [stream.read().hex()]
