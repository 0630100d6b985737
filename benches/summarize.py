#!/usr/bin/env python3
"""Summarise the last `cargo bench -p ponte-benches` run from target/criterion as Markdown:
per-benchmark mean time and throughput, and the record-layer / raw-primitive ratios that
docs/BENCHMARKS.md reports. Usage: python3 benches/summarize.py [target/criterion]"""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
rows = {}
for est in sorted(root.glob("**/new/estimates.json")):
    bench = json.loads((est.parent / "benchmark.json").read_text())
    mean_ns = json.loads(est.read_text())["mean"]["point_estimate"]
    tp = bench.get("throughput") or {}
    nbytes = tp.get("Bytes")
    rows[bench["full_id"]] = (mean_ns, nbytes)

def fmt_time(ns):
    for unit, div in (("ms", 1e6), ("µs", 1e3)):
        if ns >= div:
            return f"{ns / div:.2f} {unit}"
    return f"{ns:.0f} ns"

print("| benchmark | mean | throughput |\n|---|---|---|")
for name, (ns, nbytes) in rows.items():
    gbps = f"{nbytes / ns:.2f} GB/s" if nbytes else ""
    print(f"| {name} | {fmt_time(ns)} | {gbps} |")

def tput(name):
    ns, nbytes = rows[name]
    return nbytes / ns

print("\n| backend | size | seal / raw seal | open / raw open | (seal+open) / (raw seal+open) |\n|---|---|---|---|---|")
for backend in ("aws-lc-rs", "rustcrypto"):
    for size in (1024, 16384, 65536):
        try:
            rs, ro = rows[f"raw_aes256gcm/{backend}/seal/{size}"][0], rows[f"raw_aes256gcm/{backend}/open/{size}"][0]
            s, o = rows[f"record_seal/{backend}/{size}"][0], rows[f"record_open/{backend}/{size}"][0]
        except KeyError:
            continue
        print(f"| {backend} | {size} | {rs / s:.0%} | {ro / o:.0%} | {(rs + ro) / (s + o):.0%} |")

phases = ["spake2", "x25519", "hkdf", "confirm"]
if all(f"handshake/{p}" in rows for p in phases):
    total = sum(rows[f"handshake/{p}"][0] for p in phases)
    print(f"\nHandshake CPU per side without RSA (spake2 + x25519 + hkdf + confirm): {fmt_time(total)}")
