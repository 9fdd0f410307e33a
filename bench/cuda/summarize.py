#!/usr/bin/env python3
"""Markdown tables from the JSON lines of bench/cuda/run.sh: each of our rows
with the peer rows of the same shape and the ratio peer_ms / our_ms (>1: ours
is faster). Only pairs measured in the same run appear.

  python3 bench/cuda/summarize.py OUT/*.jsonl
"""
import json
import sys
from collections import defaultdict


def main(paths):
    rows = []
    for p in paths:
        with open(p) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    rows.append(json.loads(line))
    groups = defaultdict(list)
    for r in rows:
        if "ms" not in r:
            continue
        key = (r["op"], r.get("layer") or r.get("preset") or f'{r.get("heads")}x{r.get("seq")}x{r.get("head_dim")}',
               r.get("batch"))
        groups[key].append(r)
    print("| op | shape | batch | ours ms | peer | peer ms | peer/ours |")
    print("|---|---|---|---|---|---|---|")
    for key in sorted(groups, key=str):
        ours = [r for r in groups[key] if r["impl"].startswith("lookalike")]
        peers = [r for r in groups[key] if not r["impl"].startswith("lookalike")]
        for o in ours:
            for p in peers:
                print(f"| {key[0]} | {key[1]} | {key[2]} | {o['ms']:.4f} | {p['impl']} | {p['ms']:.4f} | "
                      f"{p['ms'] / o['ms']:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
