#!/usr/bin/env python3
"""Joins the JSON lines of gpu_index_bench and torch_peer.py into one table:
our device latency vs torch's (ratio > 1 means ours is faster)."""
import json
import sys


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main(ours_path, torch_path):
    ours = {(r["rows"], r["dim"], r["batch"], r["k"]): r for r in load(ours_path)}
    peer = {(r["rows"], r["dim"], r["batch"], r["k"]): r for r in load(torch_path)}
    print("| rows x dim | batch | k | ours ms | torch ms | speedup vs torch | HBM frac | TC frac |")
    print("|---|---|---|---|---|---|---|---|")
    for key in sorted(ours):
        o = ours[key]
        t = peer.get(key)
        t_ms = f"{t['latency_ms']:.3f}" if t else "n/a"
        ratio = f"{t['latency_ms'] / o['latency_ms']:.2f}x" if t else "n/a"
        print(f"| {key[0]} x {key[1]} | {key[2]} | {key[3]} | {o['latency_ms']:.3f} | {t_ms} | "
              f"{ratio} | {o['hbm_frac']:.2f} | {o['tc_frac']:.3f} |")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
