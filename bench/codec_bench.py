"""Codec throughput: our BSON -> CSV row encoding and back, against Extended JSON and raw BSON.

Our encode of a collection = ``SchemaBuilder.add`` (first pass) + ``RowEncoder.encode``
+ ``csv.writer`` per raw document; our decode = ``csv.reader`` + ``RowDecoder.decode``.
Extended JSON (what ``mongoexport --jsonFormat=canonical`` writes):
``json_util.dumps(bson.decode(raw))`` one line per document, and
``bson.encode(json_util.loads(line))``. The floor is the BSON library itself:
``bson.decode`` (raw bytes -> objects) for encode and ``bson.encode`` (objects -> raw
bytes) for decode, i.e. the cheapest way a lossless serialiser can touch a document.

The headline figures use whatever path the codec runs by default (the compiled
accelerator when it is built, see ``codec.accelerator()``, reported as
``codec_accelerator``); ``codec_python_paths`` repeats our side with the
accelerator switched off (the exact walker, pure Python), so the cost of a
machine without a C compiler is measured in the same run.
"""

from __future__ import annotations

import csv
import io

import bson
from bson import json_util

from backup_core import codec
from backup_core.codec import accel
from backup_core.testseam import exact_codec

from .common import best_of, equipment_docs, log, wide_nested_docs

CANONICAL = json_util.CANONICAL_JSON_OPTIONS


def our_encode(raws: list[bytes]) -> tuple[codec.Schema, str]:
    builder = codec.SchemaBuilder()
    for raw in raws:
        builder.add(raw)
    schema = builder.build()
    enc = codec.RowEncoder(schema)
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(schema.header())
    for raw in raws:
        w.writerow(enc.encode(raw))
    return schema, out.getvalue()


def our_decode(schema: codec.Schema, text: str) -> list[bytes]:
    dec = codec.RowDecoder(schema)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    next(reader)
    return [dec.decode(row) for row in reader]


def ext_encode(raws: list[bytes]) -> str:
    out = io.StringIO()
    for raw in raws:
        out.write(json_util.dumps(bson.decode(raw), json_options=CANONICAL))
        out.write("\n")
    return out.getvalue()


def ext_decode(text: str) -> list[bytes]:
    return [bson.encode(json_util.loads(line, json_options=CANONICAL)) for line in text.splitlines()]


def bson_decode(raws: list[bytes]) -> list:
    return [bson.decode(raw) for raw in raws]


def bson_encode(docs: list) -> list[bytes]:
    return [bson.encode(d) for d in docs]


def measure_shape(name: str, raws: list[bytes], repeat: int) -> dict:
    schema, text = our_encode(raws)
    assert our_decode(schema, text) == raws, f"{name}: codec round trip is not lossless"
    ext_text = ext_encode(raws)
    docs = bson_decode(raws)
    n = len(raws)
    fns = {
        "our_encode_s": lambda: our_encode(raws),
        "extjson_encode_s": lambda: ext_encode(raws),
        "bson_decode_s": lambda: bson_decode(raws),
        "our_decode_s": lambda: our_decode(schema, text),
        "extjson_decode_s": lambda: ext_decode(ext_text),
        "bson_encode_s": lambda: bson_encode(docs),
    }
    # round-robin, minimum per function: a burst of load from a neighbour on a shared
    # machine then hits every contender alike instead of one of them
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for key, fn in fns.items():
            times[key].append(best_of(fn, 1))
    t = {k: min(v) for k, v in times.items()}
    out = {"documents": n, "avg_bson_bytes": sum(map(len, raws)) // n,
           "csv_bytes": len(text.encode()), "extjson_bytes": len(ext_text.encode())}
    out.update({k: round(v, 4) for k, v in t.items()})
    out["our_encode_docs_per_s"] = round(n / t["our_encode_s"])
    out["our_decode_docs_per_s"] = round(n / t["our_decode_s"])
    out["encode_vs_extjson"] = round(t["our_encode_s"] / t["extjson_encode_s"], 3)
    out["decode_vs_extjson"] = round(t["our_decode_s"] / t["extjson_decode_s"], 3)
    out["encode_vs_bson"] = round(t["our_encode_s"] / t["bson_decode_s"], 3)
    out["decode_vs_bson"] = round(t["our_decode_s"] / t["bson_encode_s"], 3)
    log(f"codec {name}: encode x{out['encode_vs_extjson']} of ExtJSON, decode x{out['decode_vs_extjson']}")
    return out


def _ratios(per_shape: dict) -> dict:
    """Headline ratios: total time over both shapes (each shape weighted by its own run time)."""
    def ratio(ours: str, theirs: str) -> float:
        return round(sum(s[ours] for s in per_shape.values()) / sum(s[theirs] for s in per_shape.values()), 3)

    return {
        "encode_vs_extjson": ratio("our_encode_s", "extjson_encode_s"),
        "decode_vs_extjson": ratio("our_decode_s", "extjson_decode_s"),
        "encode_vs_bson": ratio("our_encode_s", "bson_decode_s"),
        "decode_vs_bson": ratio("our_decode_s", "bson_encode_s"),
    }


def run(equipment_n: int = 2000, wide_n: int = 300, repeat: int = 7) -> dict:
    shapes = {
        "equipment": [bson.encode(d) for d in equipment_docs(equipment_n)],
        "wide_nested": [bson.encode(d) for d in wide_nested_docs(wide_n)],
    }
    per_shape = {name: measure_shape(name, raws, repeat) for name, raws in shapes.items()}
    out = {f"codec_{k}": v for k, v in _ratios(per_shape).items()}
    out["codec_accelerator"] = codec.accelerator()
    out["codec_shapes"] = per_shape
    if accel.on:
        log("codec: again with the compiled accelerator switched off")
        with exact_codec():
            python = {name: measure_shape(f"{name} (exact walker)", raws, max(3, repeat // 2))
                      for name, raws in shapes.items()}
        out["codec_python_paths"] = {**_ratios(python), "shapes": python}
    return out


def profile(equipment_n: int = 2000, wide_n: int = 300, top: int = 25) -> str:
    """cProfile of our encode and decode on both shapes; returns the report text."""
    import cProfile
    import pstats

    eq = [bson.encode(d) for d in equipment_docs(equipment_n)]
    wide = [bson.encode(d) for d in wide_nested_docs(wide_n)]
    out = io.StringIO()
    pr = cProfile.Profile()
    pr.runcall(lambda: (our_encode(eq), our_encode(wide)))
    out.write("==== encode\n")
    pstats.Stats(pr, stream=out).sort_stats("tottime").print_stats(top)
    s1, t1 = our_encode(eq)
    s2, t2 = our_encode(wide)
    pr = cProfile.Profile()
    pr.runcall(lambda: (our_decode(s1, t1), our_decode(s2, t2)))
    out.write("==== decode\n")
    pstats.Stats(pr, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


if __name__ == "__main__":  # python -m bench.codec_bench: the cProfile report
    print(profile())
