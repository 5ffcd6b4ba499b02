import hashlib
import json
import struct

import numpy as np


def read_safetensors(path):
    """Tensors (numpy arrays) and metadata of a safetensors file, read as the format specifies:
    an 8-byte little-endian header length, a JSON header, then the tensors' bytes."""
    with open(path, "rb") as f:
        (header_length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_length))
        data = f.read()
    metadata = header.pop("__metadata__", {})
    checksums = json.loads(metadata["checksums"])  # model-ema's per-tensor SHA-256
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        raw = data[begin:end]
        if hashlib.sha256(raw).hexdigest() != checksums[name]:
            raise ValueError(f"{path}: checksum of {name} does not match its data")
        array = np.frombuffer(raw, dtype={"F32": "<f4", "F64": "<f8", "F16": "<f2", "BF16": "<u2"}[info["dtype"]])
        if info["dtype"] == "BF16":  # numpy has no bfloat16: widen to float32
            array = (array.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = array.reshape(info["shape"])
    return tensors, metadata


def parameter_keys(names):
    """The per-parameter part of the tensor names: the parameter's name, or its index when unnamed;
    a key that several parameters share becomes "<key>#<index>" (more "#" while that is taken)."""
    preferred = [str(i) if n is None else n for i, n in enumerate(names)]
    taken = set(preferred)
    keys = []
    for i, key in enumerate(preferred):
        if preferred.count(key) > 1:
            key = f"{key}#{i}"
            while key in taken:
                key += "#"
            taken.add(key)
        keys.append(key)
    return keys


tensors, meta = read_safetensors("ema.safetensors")
names = json.loads(meta["names"])
shadows = [tensors[f"shadow.{key}"] for key in parameter_keys(names)]  # in parameter order
num_updates = None if meta["num_updates"] == "null" else int(meta["num_updates"])
print(f"decay {meta['decay']}, num_updates {num_updates}, dtype {meta['dtype']}, {len(shadows)} shadows")

# Into PyTorch, in parameter order (torch_ema, or a model whose parameters are in the same order):
#   ema.shadow_params = [torch.from_numpy(s.copy()).view_as(p) for s, p in zip(shadows, model.parameters())]
#   ema.num_updates = num_updates
