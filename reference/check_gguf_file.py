#!/usr/bin/env python3
"""Opens a GGUF file with gguf-py's GGUFReader (llama.cpp's own Python reader) and prints what it sees: version,
alignment, every metadata key with its type and value (long arrays shortened), and every tensor's name, type, dims
(ggml order, innermost first), element count and data offset. Then it dequantizes every tensor gguf-py can
dequantize and reports how many hold non-finite values.

Exits 1 (with the reader's error) if gguf-py cannot read the file, or if --expect-keys / --expect-tensors name a key or
tensor the file lacks. Used to check files written by the Swift GGUFWriter (`llm convert`).

Usage: python3 reference/check_gguf_file.py FILE.gguf [--expect-keys k1,k2] [--expect-tensors t1,t2] [--no-dequantize]
"""
import argparse
import sys

import numpy as np
import gguf
from gguf import GGUFValueType as V
from gguf.quants import dequantize


def describe(field):
    """A short, one-line description of a metadata field: type and value."""
    types = [t.name.lower() for t in field.types]
    if not field.types:
        return "?", ""
    if field.types[0] == V.ARRAY:
        type_name = "array[" + "][".join(types[1:]) + "]" if len(types) > 1 else "array[]"
        if len(types) > 2:  # arrays of arrays: GGUFReader flattens them; show only the outer count
            return type_name, f"{int(field.parts[4][0])} arrays"
        n = len(field.data)
        values = [field.contents(i) for i in range(min(n, 8))]
        more = f", ... ({n} in all)" if n > 8 else ""
        return type_name, "[" + ", ".join(repr(v) for v in values) + more + "]"
    value = field.contents()
    if isinstance(value, str) and len(value) > 80:
        value = value[:77] + "..."
    return types[0], repr(value)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path")
    parser.add_argument("--expect-keys", default="", help="comma-separated metadata keys that must be present")
    parser.add_argument("--expect-tensors", default="", help="comma-separated tensor names that must be present")
    parser.add_argument("--no-dequantize", action="store_true", help="skip dequantizing the tensors")
    args = parser.parse_args()

    try:
        reader = gguf.GGUFReader(args.path)
    except Exception as e:  # the reader raises ValueError, IndexError, ... on bad files
        print(f"{args.path}: gguf-py cannot read it: {type(e).__name__}: {e}")
        return 1

    version = int(reader.fields["GGUF.version"].parts[0][0])
    print(f"{args.path}: GGUF v{version}, alignment {reader.alignment}, data at byte {reader.data_offset}")
    keys = [k for k in reader.fields if not k.startswith("GGUF.")]
    print(f"{len(keys)} metadata keys:")
    for key in keys:
        type_name, value = describe(reader.fields[key])
        print(f"  {key}: {type_name} = {value}")

    print(f"{len(reader.tensors)} tensors:")
    nonfinite = 0
    for t in reader.tensors:
        dims = [int(d) for d in t.shape]
        line = f"  {t.name}: {t.tensor_type.name} dims {dims} ({int(t.n_elements)} elements) at +{int(t.data_offset - reader.data_offset)}"
        if not args.no_dequantize:
            try:
                values = dequantize(t.data, t.tensor_type)
                bad = int(np.size(values) - np.isfinite(values).sum())
                nonfinite += bad > 0
                if bad:
                    line += f", {bad} non-finite values"
            except NotImplementedError:
                line += " (gguf-py cannot dequantize it)"
        print(line)

    missing = [k for k in filter(None, args.expect_keys.split(",")) if k not in reader.fields]
    missing += [n for n in filter(None, args.expect_tensors.split(",")) if n not in {t.name for t in reader.tensors}]
    if missing:
        print(f"missing: {', '.join(missing)}")
        return 1
    if nonfinite:
        print(f"{nonfinite} tensors hold non-finite values")
    return 0


if __name__ == "__main__":
    sys.exit(main())
