"""Safetensors files with numpy alone (Debian has no Python `safetensors` package).

The format (Hugging Face): 8-byte little-endian header length, a JSON header mapping each
tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into the byte
buffer after the header) plus an optional "__metadata__" string map, then the raw
little-endian tensor bytes. The header is padded with spaces to a multiple of 8 bytes so
that the data starts aligned, as the reference writer does.

`write` is atomic: it writes a temporary file beside the target and renames it, so a
failure leaves no partial file; it refuses an existing path unless `force`.
"""
import json
import os
import struct
import tempfile

import numpy as np

# dtype name -> numpy storage type (little-endian). BF16 is stored as uint16 bits.
STORAGE = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
           "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "u1"}
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")
INT_RANGE = {"I64": (-2 ** 63, 2 ** 63 - 1), "I32": (-2 ** 31, 2 ** 31 - 1), "I16": (-2 ** 15, 2 ** 15 - 1),
             "I8": (-128, 127), "U8": (0, 255), "BOOL": (0, 1)}


class SafetensorsError(Exception):
    pass


def float32_to_bf16_bits(x):
    """float32 -> bfloat16 bit patterns, round to nearest even (finite inputs)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_bits_to_float32(bits):
    return (np.asarray(bits, dtype=np.uint32) << 16).view(np.float32)


def encode(name, array, dtype):
    """The tensor's bytes in `dtype`; floats are rounded to nearest even, integers must fit."""
    if dtype not in STORAGE:
        raise SafetensorsError(f"tensor {name}: unsupported dtype {dtype}")
    a = np.asarray(array)
    if dtype in FLOAT_DTYPES:
        a64 = a.astype(np.float64)
        if not np.all(np.isfinite(a64)):
            raise SafetensorsError(f"tensor {name}: holds NaN or Inf")
        with np.errstate(over="ignore"):  # an overflow is reported below, in one line
            narrow = a.astype(np.float32) if dtype == "BF16" else a.astype(STORAGE[dtype])
        if dtype == "BF16":
            out = float32_to_bf16_bits(narrow)
            if not np.all(np.isfinite(bf16_bits_to_float32(out))):
                raise SafetensorsError(f"tensor {name}: a value overflows BF16")
            return out.astype("<u2").tobytes()
        out = narrow
        if not np.all(np.isfinite(out)):
            limit = " (F16 max is 65504)" if dtype == "F16" else ""
            raise SafetensorsError(f"tensor {name}: a value overflows {dtype}{limit}")
        return out.tobytes()
    lo, hi = INT_RANGE[dtype]
    if a.size and (not np.all(np.equal(np.mod(a, 1), 0)) or a.min() < lo or a.max() > hi):
        raise SafetensorsError(f"tensor {name}: values must be integers in [{lo}, {hi}] for {dtype}")
    return a.astype(STORAGE[dtype]).tobytes()


def serialize(tensors, metadata=None):
    """tensors: {name: (array, dtype)} -> the file's bytes (tensors in name order)."""
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        array, dtype = tensors[name]
        raw = encode(name, array, dtype)
        header[name] = {"dtype": dtype, "shape": list(np.shape(array)), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise SafetensorsError(f"__metadata__.{bad[0]}: metadata values must be strings")
        header["__metadata__"] = dict(metadata)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def write_bytes_atomically(path, data, force=False):
    if os.path.exists(path) and not force:
        raise SafetensorsError(f"{path}: exists (pass --force / force=True to overwrite)")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise SafetensorsError(f"{path}: directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make the file private
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write(path, tensors, metadata=None, force=False):
    """Writes {name: (array, dtype)} and the metadata string map to `path`, atomically."""
    write_bytes_atomically(path, serialize(tensors, metadata), force=force)


def read(path):
    """({name: numpy array}, metadata). BF16 is returned as float32, F16 as float16."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise SafetensorsError(f"{path}: {e.strerror}") from None
    if len(raw) < 8:
        raise SafetensorsError(f"{path}: shorter than 8 bytes")
    (length,) = struct.unpack("<Q", raw[:8])
    if 8 + length > len(raw):
        raise SafetensorsError(f"{path}: file is shorter than its header says")
    try:
        header = json.loads(raw[8:8 + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{path}: header is not JSON ({e})") from None
    metadata = header.pop("__metadata__", None) or {}
    data = raw[8 + length:]
    tensors = {}
    for name, entry in header.items():
        dtype = entry.get("dtype")
        if dtype not in STORAGE:
            raise SafetensorsError(f"{path}: tensor {name}: unsupported dtype {dtype}")
        begin, end = entry["data_offsets"]
        shape = entry["shape"]
        count = int(np.prod(shape)) if shape else 1
        if not (0 <= begin <= end <= len(data)) or end - begin != count * np.dtype(STORAGE[dtype]).itemsize:
            raise SafetensorsError(f"{path}: tensor {name}: data_offsets do not match its shape and dtype")
        array = np.frombuffer(data[begin:end], dtype=STORAGE[dtype]).reshape(shape)
        if dtype == "BF16":
            array = bf16_bits_to_float32(array)
        elif dtype == "BOOL":
            array = array.astype(bool)
        tensors[name] = array
    return tensors, metadata
