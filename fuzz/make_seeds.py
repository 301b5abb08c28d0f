#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/: a handful of
small valid files and edge cases each, and (named regression-<what>) the inputs that once
crashed a reader. An input a fuzz run finds is added here the same way, so that the corpus
can always be rewritten. Run from anywhere: python3 fuzz/make_seeds.py
"""
import gzip
import json
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    folder = os.path.join(ROOT, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


# CSV: the first byte chooses header mode (byte % 3: auto, yes, no) and delimiter
# ((byte // 3) % 4: comma, tab, space, semicolon).
put("csv", "header", b"\x00x,y\n1,2\n3.5,-4e-3\n")
put("csv", "no-header", b"\x02" + b"1,2,3\n4,5,6\n")
put("csv", "quoted", b"\x01" + b'"a,b",c\n1,2\n# comment\n\n3,4\n')
put("csv", "tabs", b"\x03" + b"p\tq\n0.1\t0.2\n")
put("csv", "semicolon-crlf", b"\x09" + b"u;v\r\n1;2\r\n")
put("csv", "ragged", b"\x00" + b"1,2\n3\n")
put("csv", "nan", b"\x00" + b"a\nnan\n")


def npy(descr, shape, payload, version=1):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    header += " " * ((64 - (len(header) + 11) % 64) % 64) + "\n"
    if version == 1:
        prefix = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header))
    else:
        prefix = b"\x93NUMPY\x02\x00" + struct.pack("<I", len(header))
    return prefix + header.encode() + payload


put("npy", "f8-2x2", npy("<f8", "(2, 2)", struct.pack("<4d", 1, 2, 3, 4)))
put("npy", "f4-3", npy("<f4", "(3,)", struct.pack("<3f", 1, -2, 0.5)))
put("npy", "i8-v2", npy("<i8", "(1, 2)", struct.pack("<2q", 7, -7), version=2))
put("npy", "i4-1x1", npy("<i4", "(1, 1)", struct.pack("<i", 42)))
put("npy", "huge-shape", npy("<f8", "(4611686018427387904, 4)", b""))
put("npy", "truncated", npy("<f8", "(3, 3)", b"\0" * 16))


def idx(dims, payload):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


put("idx", "images", idx([2, 3, 3], bytes(range(18))))
put("idx", "labels", idx([4], bytes([1, 2, 3, 4])))
put("idx", "gzip", gzip.compress(idx([2, 2], bytes([9, 8, 7, 6])), mtime=0))
put("idx", "huge-dims", idx([65535, 65535, 65535, 65535], b""))
put("idx", "float-type", bytes([0, 0, 0x0D, 1, 0, 0, 0, 1]) + b"\0\0\0\0")


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def png(width, height, depth, color, rows, extra=b"", interlace=0, idat=None):
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, interlace)
    data = zlib.compress(rows) if idat is None else idat
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", data) +
            chunk(b"IEND", b""))


put("png", "gray-2x2", png(2, 2, 8, 0, b"\0\x00\x80\0\xff\x10"))
put("png", "rgb-2x1", png(2, 1, 8, 2, b"\0" + bytes([1, 2, 3, 4, 5, 6])))
put("png", "rgba-1x1", png(1, 1, 8, 6, b"\0" + bytes([9, 8, 7, 6])))
put("png", "gray16", png(2, 1, 16, 0, b"\0\x12\x34\xff\xff"))
put("png", "palette-trns",
    png(2, 1, 8, 3, b"\0\x00\x01", extra=chunk(b"PLTE", bytes(range(6))) + chunk(b"tRNS", b"\x80")))
put("png", "gray1bit", png(3, 1, 1, 0, b"\0\xa0"))
put("png", "interlaced", png(3, 3, 8, 0, b"\0" * 30, interlace=1))
put("png", "regression-empty-idat-first",
    png(1, 1, 8, 0, b"\0\x55", extra=chunk(b"IDAT", b"")))

meta = {"format": "zflow-flow/1", "dtype": "float32",
        "spec": json.dumps({"type": "flow",
                            "transform": {"type": "composite", "layers": [
                                {"type": "elementwise_affine", "features": 2}]},
                            "base": {"type": "standard_normal", "shape": [2]}})}


def safetensors(header, payload):
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + payload


put("safetensors", "two-tensors", safetensors(
    {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
     "b": {"dtype": "I64", "shape": [1, 1], "data_offsets": [8, 16]}},
    struct.pack("<2f", 1, 2) + struct.pack("<q", 3)))
put("safetensors", "empty-and-scalar", safetensors(
    {"__metadata__": {"k": "v"}, "z": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]},
     "s": {"dtype": "F64", "shape": [], "data_offsets": [0, 8]}}, struct.pack("<d", 1.5)))
put("safetensors", "model", safetensors(
    {"__metadata__": meta,
     "transform.layers.0.log_scale": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
     "transform.layers.0.shift": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}},
    struct.pack("<4f", 0.1, 0.2, 0.3, 0.4)))
put("safetensors", "regression-zero-dim-strides", safetensors(
    {"a": {"dtype": "F32", "shape": [0, 4611686018427387904, 4611686018427387904],
           "data_offsets": [0, 0]}}, b""))
put("safetensors", "model-bf16-tensor", safetensors(
    {"__metadata__": meta,
     "transform.layers.0.log_scale": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]},
     "transform.layers.0.shift": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}},
    b"\0" * 12))


def spec(name, value):
    put("spec", name, json.dumps(value))


mlp = {"type": "mlp", "hidden": 8, "layers": 2, "activation": "relu"}
spec("realnvp", {"type": "flow", "transform": {"type": "composite", "layers": [
    {"type": "affine_coupling", "mask": [0, 1], "conditioner": mlp, "context_features": 0},
    {"type": "permutation", "features": 2, "kind": "reverse"},
    {"type": "additive_coupling", "mask": [1, 0]},
    {"type": "actnorm", "features": 2}]},
    "base": {"type": "diagonal_normal", "shape": [2]}})
spec("maf-context", {"type": "flow", "context_features": 1, "transform": {"type": "composite",
    "layers": [{"type": "masked_affine_autoregressive", "features": 3, "context_features": 1,
                "made": {"hidden": [8, 8]}},
               {"type": "masked_spline_autoregressive", "features": 3, "bins": 4}]},
    "base": {"type": "standard_normal", "shape": [3]},
    "embedding": {"features": 2, "hidden": 4, "layers": 1}})
spec("nsf", {"type": "composite", "layers": [
    {"type": "spline_coupling", "mask": [0, 1, 1], "bins": 3, "tail_bound": 2.5},
    {"type": "lu_linear", "features": 3, "seed": 5},
    {"type": "inverse", "transform": {"type": "sigmoid"}},
    {"type": "standardize", "mean": [0, 1, 2], "std": [1, 1, 2]}]})
spec("image", {"type": "flow", "transform": {"type": "composite", "layers": [
    {"type": "dequantize", "bits": 8}, {"type": "logit", "lower": -0.05, "upper": 1.05},
    {"type": "multiscale", "shape": [1, 4, 4], "levels": [
        {"type": "composite", "layers": [
            {"type": "squeeze", "factor": 2}, {"type": "actnorm", "features": 4},
            {"type": "conv_coupling", "channels": 4, "hidden": 4}]},
        {"type": "composite", "layers": [{"type": "actnorm", "features": 2}]}]}]},
    "base": {"type": "standard_normal", "shape": [1, 4, 4]}})
spec("residual", {"type": "flow", "transform": {"type": "composite", "layers": [
    {"type": "planar", "features": 2, "max_iterations": 50}, {"type": "radial", "features": 2},
    {"type": "sylvester", "features": 2, "num_reflections": 1}]},
    "base": {"type": "standard_normal", "shape": [2]}})
spec("iresnet", {"type": "flow", "transform": {"type": "composite", "layers": [
    {"type": "iresnet", "features": 2, "hidden": 4, "layers": 1, "lipschitz": 0.5},
    {"type": "iresnet", "features": 2, "hidden": 3, "activation": "elu"}]},
    "base": {"type": "standard_normal", "shape": [2]}})
spec("mixture", {"type": "gaussian_mixture", "shape": [2], "components": 3})
spec("conditional", {"type": "conditional_diagonal_normal", "shape": [2],
                     "context_features": 2, "conditioner": {"hidden": 4}})
spec("uniform", {"type": "box_uniform", "low": [0, 0], "high": [1, 2]})
put("spec", "regression-float-factor", '{"type":"squeeze","factor":1e20}')
put("spec", "regression-float-features", '{"type":"actnorm","features":2.7}')
put("spec", "huge-reflections", '{"type":"sylvester","features":2,"num_reflections":1000000000000}')
put("spec", "huge-iresnet", '{"type":"iresnet","features":2,"hidden":1000000,"layers":1000000}')
put("spec", "huge-hidden",
    '{"type":"affine_coupling","mask":[0,1],"conditioner":{"hidden":1000000000000}}')

put("metrics", "tabular",
    '{"step":0,"train_nll":2.5}\n{"step":10,"train_nll":2.1,"val_nll":2.2}\n'
    '{"event":"resume","step":10}\n{"step":20,"train_nll":null,"val_nll":1.9}\n')
put("metrics", "images", '{"step":1,"train_bpd":5.5,"train_nll":3000}\n\n'
    '{"step":2,"train_bpd":5.0,"val_bpd":5.1}\r\n')
put("metrics", "bad-step", '{"step":"ten","train_nll":1}\n')
put("metrics", "not-json", '{"step":1}\n{"step":\n')
