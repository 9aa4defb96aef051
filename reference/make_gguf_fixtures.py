#!/usr/bin/env python3
"""Writes the GGUF fixtures of Tests/LLMTests/Fixtures/gguf/ with the `gguf` package (llama.cpp's Python library).

Everything is seeded, so the output is byte-identical from one run to the next (with the same gguf and numpy).

Dequantization, one pair of files per type (F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K):
  <TYPE>.raw   raw blocks, back to back, as they lie in a GGUF file
  <TYPE>.f32   gguf.quants.dequantize(raw, TYPE): float32 little-endian, what the Swift dequantizer must give bit for bit
Half of the blocks are random bytes (every bit pattern of scales and quants) with their f16 scale fields replaced by
finite, moderate values; the other half come from gguf.quants.quantize of random floats where gguf can quantize the
type, and otherwise are random bytes with other scale magnitudes (tiny, subnormal, zero, negative). F16 and BF16 are
random 16-bit patterns plus every special (zeros, subnormals, infinities, NaNs with payloads).

Quantization (what `llm convert` writes must equal what gguf would write):
  convert-input.f32   4096 floats: special bit patterns (NaNs, infinities, subnormals, f16 and bf16 rounding ties and
                      overflow boundaries) and random bit patterns and normal values
  convert-input.F16   gguf.quants.quantize(input, F16)   (numpy's float32 -> float16 cast)
  convert-input.BF16  gguf.quants.quantize(input, BF16)  (round to nearest even, NaNs made quiet)
  q8_0-input.f32      64 blocks of 32 floats at many scales, with zeros, ties, infinities, NaNs and subnormal blocks
  q8_0-input.Q8_0     gguf.quants.quantize(input, Q8_0)

Files:
  reader.gguf, reader.json   a GGUF v3 file written by gguf.GGUFWriter with alignment 64, every metadata type (arrays
                             of every element type, arrays of strings, arrays of arrays, extreme values, empty and
                             non-ASCII strings) and tensors of 14 types in 1 to 4 dimensions. The JSON lists the
                             metadata in file order with types and exact values (integers as decimal strings, floats as
                             bit patterns) and each tensor's dims in ggml order, type, offset and dequantized values
                             (float32 bit patterns; for the I32 tensor, its integers).
  writer.gguf                a GGUF v3 file written by gguf.GGUFWriter (alignment 32) with tensors F32, F16, BF16 and
                             Q8_0 made from q8_0-input.f32. The Swift test writes the same metadata and tensors with
                             GGUFWriter and must produce the same bytes.

Usage: python3 reference/make_gguf_fixtures.py [--out Tests/LLMTests/Fixtures/gguf]
"""
import argparse
import json
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T, GGUFValueType as V
from gguf.quants import quantize, dequantize

QK = gguf.GGML_QUANT_SIZES


def f16_bytes(values):
    return np.asarray(values, dtype=np.float32).astype(np.float16).view(np.uint8)


def random_scales(rng, n, scale):
    """n finite f16 values around ±scale (some zero)."""
    v = rng.standard_normal(n).astype(np.float32) * scale
    v[rng.random(n) < 0.1] = 0
    return v


def random_blocks(rng, qtype, n_blocks, scale):
    """Random bytes for n_blocks blocks of qtype with every f16 scale field set to finite values of about `scale`."""
    block_size, type_size = QK[qtype]
    blocks = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    # Byte offsets of the f16 fields (d, and m/dmin) in each block layout.
    fields = {
        T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
        T.Q2_K: [type_size - 4, type_size - 2], T.Q3_K: [type_size - 2], T.Q4_K: [0, 2], T.Q5_K: [0, 2],
        T.Q6_K: [type_size - 2],
    }[qtype]
    for off in fields:
        blocks[:, off:off + 2] = f16_bytes(random_scales(rng, n_blocks, scale)).reshape(n_blocks, 2)
    return blocks


def quantized_blocks(rng, qtype, n_blocks):
    """Blocks of qtype: half random bytes with moderate scales, half quantized floats (or other scale magnitudes)."""
    half = n_blocks // 2
    first = random_blocks(rng, qtype, half, 0.05)
    try:
        floats = (rng.standard_normal((n_blocks - half, QK[qtype][0])) * rng.choice([1e-3, 0.1, 3.0], size=(n_blocks - half, 1))).astype(np.float32)
        second = quantize(floats, qtype).reshape(n_blocks - half, -1)
    except NotImplementedError:
        # K-quants: gguf cannot quantize them; use scales of other magnitudes (including f16 subnormals).
        second = np.concatenate([random_blocks(rng, qtype, 1, s) for s in [1e-6, 4.0, 0.0, 2e-3][: n_blocks - half]])
    return np.concatenate([first, second]).astype(np.uint8)


def special_halves():
    """16-bit patterns that matter for f16 and bf16: zeros, subnormals, extremes, infinities, NaNs."""
    return np.array([0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0xBC00, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00,
                     0x7C01, 0x7E00, 0x7FFF, 0xFC01, 0xFE00, 0xFFFF, 0x007F, 0x0080, 0x7F7F, 0x7F80, 0xFF80, 0x7F81,
                     0x7FC0, 0xFFC1, 0x3F80, 0xBF80], dtype=np.uint16)


def write(path, array):
    with open(path, "wb") as f:
        f.write(np.ascontiguousarray(array).tobytes())


def dequant_fixtures(out, rng):
    written = {}
    # F16 and BF16: special patterns and random patterns.
    halves = np.concatenate([special_halves(), rng.integers(0, 1 << 16, size=484, dtype=np.uint16)])
    for qtype in (T.F16, T.BF16):
        raw = halves.view(np.uint8)
        written[qtype] = raw
        write(f"{out}/{qtype.name}.raw", raw)
        write(f"{out}/{qtype.name}.f32", dequantize(raw, qtype).astype("<f4"))
    for qtype, n in [(T.Q8_0, 8), (T.Q4_0, 8), (T.Q4_1, 8), (T.Q5_0, 8), (T.Q5_1, 8),
                     (T.Q2_K, 4), (T.Q3_K, 4), (T.Q4_K, 4), (T.Q5_K, 4), (T.Q6_K, 4)]:
        raw = quantized_blocks(rng, qtype, n).reshape(-1)
        written[qtype] = raw
        out_f32 = dequantize(raw, qtype).astype("<f4")
        assert np.isfinite(out_f32).all(), qtype.name
        write(f"{out}/{qtype.name}.raw", raw)
        write(f"{out}/{qtype.name}.f32", out_f32)
    return written


def convert_input(rng):
    """Floats whose f16 and bf16 conversions exercise every rounding path."""
    specials = [
        0x00000000, 0x80000000, 0x7F800000, 0xFF800000,                   # zeros, infinities
        0x7F800001, 0x7FC00000, 0xFFC00001, 0x7F802000, 0x7FFFE000, 0x7FFFFFFF, 0xFFFFFFFF, 0x7FA00000,  # NaNs
        0x00000001, 0x807FFFFF, 0x00800000,                               # float32 subnormals, smallest normal
        0x33000000, 0x33000001, 0xB3000000, 0x33800000, 0x337FFFFF,       # around half the smallest f16 subnormal
        0x38800000, 0x387FC000, 0x387FE000, 0x387FF000,                   # f16 smallest normal and subnormal ties
        0x477FE000, 0x477FEFFF, 0x477FF000, 0x47800000, 0xC77FF000,       # f16 largest finite / overflow boundary
        0x3F801000, 0x3F803000, 0x3F800FFF, 0x3F801001,                   # f16 ties to even
        0x3F808000, 0x3F818000, 0x3F807FFF, 0x3F808001,                   # bf16 ties to even
        0x7F7FFFFF, 0xFF7FFFFF, 0x7F7F8000, 0x7F7F7FFF,                   # float32 max, bf16 overflow
    ]
    bits = np.array(specials, dtype=np.uint32)
    random_bits = rng.integers(0, 1 << 32, size=2048 - len(bits), dtype=np.uint64).astype(np.uint32)
    # Values near the f16 range, where every rounding matters.
    near = (rng.standard_normal(1024) * np.exp(rng.uniform(-20, 12, 1024))).astype(np.float32).view(np.uint32)
    ties = (rng.integers(0, 1 << 19, size=1024, dtype=np.uint32) << 13 | 0x1000) & 0x7FFFFFFF  # f16 ties
    ties[512:] = (ties[512:] & 0xFFFF0000) | 0x8000                                                # bf16 ties
    return np.concatenate([bits, random_bits, near, ties]).view(np.float32)


def q8_0_input(rng):
    blocks = rng.standard_normal((64, 32)).astype(np.float32)
    blocks *= np.exp(rng.uniform(-12, 12, size=(64, 1))).astype(np.float32)
    blocks[0] = 0                                   # all zero: d = 0
    blocks[1, :] = np.arange(32) - 15.5             # many exact halves after scaling
    blocks[2, :] = (np.arange(32) - 16) * 127 / 16  # exact multiples of d
    blocks[3, 5] = np.inf                           # d = inf: every quant becomes 0
    blocks[4, 7] = np.nan                           # d = NaN
    blocks[5, :] = 1e-40                            # subnormal: d underflows to 0
    blocks[6, :] = np.float32(1e-38) * (np.arange(32) - 10)  # d subnormal, 1/d = inf
    blocks[7, 9] = -np.inf
    blocks[8, :] = 65504 * 127 * 1.01               # d overflows f16
    return blocks.reshape(-1)


def quant_fixtures(out, rng):
    x = convert_input(rng)
    write(f"{out}/convert-input.f32", x.astype("<f4"))
    with np.errstate(all="ignore"):
        write(f"{out}/convert-input.F16", quantize(x, T.F16).view(np.uint8))
        write(f"{out}/convert-input.BF16", quantize(x, T.BF16).view(np.uint8))
        q = q8_0_input(rng)
        write(f"{out}/q8_0-input.f32", q.astype("<f4"))
        write(f"{out}/q8_0-input.Q8_0", quantize(q.reshape(-1, 32), T.Q8_0))
    return q


def typed(value, vtype, sub_type=None):
    """The JSON description of a metadata value: every number exact (decimal strings, float bit patterns)."""
    if vtype == V.ARRAY:
        items = []
        for item in value:
            item_type = sub_type if sub_type is not None else V.get_type(item)
            items.append(typed(item, item_type))
        return {"type": "array", "value": items}
    if vtype == V.FLOAT32:
        return {"type": "float32", "value": str(int(np.array(value, dtype=np.float32).view(np.uint32)))}
    if vtype == V.FLOAT64:
        return {"type": "float64", "value": str(int(np.array(value, dtype=np.float64).view(np.uint64)))}
    if vtype == V.BOOL:
        return {"type": "bool", "value": "true" if value else "false"}
    if vtype == V.STRING:
        return {"type": "string", "value": value}
    return {"type": vtype.name.lower(), "value": str(int(value))}


def reader_fixture(out, rng, raw_by_type):
    path = f"{out}/reader.gguf"
    w = gguf.GGUFWriter(path, arch="llama")  # writes general.architecture first
    meta = [("general.architecture", "llama", V.STRING, None)]

    def add(key, value, vtype, sub_type=None):
        w.add_key_value(key, value, vtype, sub_type=sub_type)
        meta.append((key, value, vtype, sub_type))

    w.add_custom_alignment(64)
    meta.append(("general.alignment", 64, V.UINT32, None))
    add("test.uint8", 255, V.UINT8)
    add("test.int8", -128, V.INT8)
    add("test.uint16", 65535, V.UINT16)
    add("test.int16", -32768, V.INT16)
    add("test.uint32", 4294967295, V.UINT32)
    add("test.int32", -2147483648, V.INT32)
    add("test.uint64", 18446744073709551615, V.UINT64)
    add("test.int64", -9223372036854775808, V.INT64)
    add("test.float32", 3.14159, V.FLOAT32)
    add("test.float32.negzero", -0.0, V.FLOAT32)
    add("test.float32.inf", float("inf"), V.FLOAT32)
    add("test.float32.subnormal", 1e-45, V.FLOAT32)
    add("test.float64", 2.718281828459045, V.FLOAT64)
    add("test.float64.min", 5e-324, V.FLOAT64)
    add("test.bool.true", True, V.BOOL)
    add("test.bool.false", False, V.BOOL)
    add("test.string", "hello GGUF", V.STRING)
    add("test.string.empty", "", V.STRING)
    add("test.string.unicode", "héllo wörld ✓ 日本語 🦙 with\nnewline and \x00 NUL", V.STRING)
    add("test.ключ.🔑", "non-ASCII key", V.STRING)
    for vtype, values in [(V.UINT8, [0, 1, 255]), (V.INT8, [-128, 0, 127]), (V.UINT16, [0, 65535]),
                          (V.INT16, [-32768, 32767]), (V.UINT32, [0, 4294967295]), (V.INT32, [-2147483648, 7]),
                          (V.UINT64, [0, 18446744073709551615]), (V.INT64, [-9223372036854775808, 9223372036854775807]),
                          (V.FLOAT32, [1.5, -2.25, 1e30]), (V.FLOAT64, [1e300, -1e-300]), (V.BOOL, [True, False, True]),
                          (V.STRING, ["a", "", "ß", "<0x0A>"])]:
        add(f"test.array.{vtype.name.lower()}", values, V.ARRAY, sub_type=vtype)
    add("tokenizer.ggml.tokens", [f"tok{i}" for i in range(40)], V.ARRAY, sub_type=V.STRING)
    add("test.array.array", [[1, 2], [3, 4, 5]], V.ARRAY, sub_type=V.ARRAY)
    add("test.array.array.string", [["x", "y"], ["z"]], V.ARRAY, sub_type=V.ARRAY)
    add("test.array.array.array", [[[1.0]], [[2.0, 3.0], [4.0]]], V.ARRAY, sub_type=V.ARRAY)

    tensors = []

    def add_tensor(name, qtype, np_shape, data=None):
        """np_shape is numpy's (outermost first); the file stores ggml's order (innermost first)."""
        n = int(np.prod(np_shape))
        if data is None:
            if qtype == T.F32:
                data = rng.standard_normal(np_shape).astype(np.float32)
            elif qtype == T.I32:
                data = rng.integers(-1000, 1000, size=np_shape, dtype=np.int32)
            else:
                block_size, type_size = QK[qtype]
                pool = raw_by_type[qtype]
                nbytes = n // block_size * type_size
                start = int(rng.integers(0, len(pool) // type_size - nbytes // type_size + 1)) * type_size
                data = pool[start:start + nbytes].reshape(*np_shape[:-1], np_shape[-1] // block_size * type_size)
        if qtype in (T.F32, T.I32):
            w.add_tensor(name, data)
        else:
            w.add_tensor(name, data, raw_dtype=qtype)
        tensors.append((name, qtype, list(reversed(np_shape)), data))

    add_tensor("f32.4d", T.F32, (2, 1, 3, 2))
    add_tensor("f32.1d", T.F32, (5,))
    add_tensor("f16", T.F16, (3, 8))
    add_tensor("bf16", T.BF16, (7,))
    add_tensor("q8_0", T.Q8_0, (2, 64))
    add_tensor("q4_0", T.Q4_0, (64,))
    add_tensor("q4_1", T.Q4_1, (3, 32))
    add_tensor("q5_0", T.Q5_0, (32,))
    add_tensor("q5_1", T.Q5_1, (2, 1, 32))
    add_tensor("q2_k", T.Q2_K, (256,))
    add_tensor("q3_k", T.Q3_K, (256,))
    add_tensor("q4_k", T.Q4_K, (2, 256))
    add_tensor("q5_k", T.Q5_K, (256,))
    add_tensor("q6_k", T.Q6_K, (256,))
    add_tensor("i32", T.I32, (4,))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # Offsets as GGUFReader sees them, to cross-check the file against the JSON.
    r = gguf.GGUFReader(path)
    offsets = {t.name: int(t.data_offset - r.data_offset) for t in r.tensors}
    described = []
    for name, qtype, dims, data in tensors:
        entry = {"name": name, "type": int(qtype), "dims": dims, "offset": offsets[name]}
        if qtype == T.F32:
            entry["bits"] = [int(b) for b in data.astype("<f4").view(np.uint32).reshape(-1)]
        elif qtype == T.I32:
            entry["ints"] = [int(v) for v in data.reshape(-1)]
        else:
            entry["bits"] = [int(b) for b in dequantize(data, qtype).astype("<f4").view(np.uint32).reshape(-1)]
        described.append(entry)
    expected = {
        "version": 3,
        "alignment": 64,
        "data_offset": int(r.data_offset),
        "metadata": [{"key": k, **typed(v, t, s)} for k, v, t, s in meta],
        "tensors": described,
    }
    with open(f"{out}/reader.json", "w") as f:
        json.dump(expected, f, indent=0, ensure_ascii=False)
        f.write("\n")


def writer_fixture(out, q8_input):
    """The file the Swift GGUFWriter must reproduce byte for byte (see GGUFTests.writerMatchesGGUFByteForByte)."""
    path = f"{out}/writer.gguf"
    w = gguf.GGUFWriter(path, arch="test")
    w.add_uint32("test.context_length", 64)
    w.add_float32("test.eps", 1e-5)
    w.add_bool("test.flag", True)
    w.add_array("tokenizer.ggml.tokens", ["<s>", "</s>", "hello", "wörld"])
    w.add_key_value("test.scores", [0.0, -1.5, 2.25], V.ARRAY, sub_type=V.FLOAT32)
    w.add_key_value("test.ids", [1, 2, 3], V.ARRAY, sub_type=V.INT64)
    x = q8_input.reshape(-1)
    finite = np.nan_to_num(x[: 32 * 12], nan=0.0, posinf=1.0, neginf=-1.0).astype(np.float32)
    # ggml dims [32, 3], [64], [96, 1], [32, 4]: numpy shapes are the reverse.
    with np.errstate(all="ignore"):
        w.add_tensor("t.f32", finite[:96].reshape(3, 32))
        w.add_tensor("t.f16", quantize(finite[96:160], T.F16))
        w.add_tensor("t.bf16", quantize(finite[160:256].reshape(1, 96), T.BF16), raw_dtype=T.BF16)
        w.add_tensor("t.q8_0", quantize(finite[256:384].reshape(4, 32), T.Q8_0), raw_dtype=T.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "Tests", "LLMTests", "Fixtures", "gguf"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(20240)
    raw_by_type = dequant_fixtures(args.out, rng)
    q8 = quant_fixtures(args.out, rng)
    reader_fixture(args.out, rng, raw_by_type)
    writer_fixture(args.out, q8)
    total = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(f"wrote {len(os.listdir(args.out))} files, {total} bytes, to {os.path.normpath(args.out)}")


if __name__ == "__main__":
    main()
