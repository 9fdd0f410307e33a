#!/usr/bin/env python3
"""Peer for cuda_attention_bench: torch SDPA (flash, cuDNN, efficient) at the same
shapes, fp16, CUDA events, warm-up separate, inputs rotated past L2.

  python3 bench/cuda/peer_attention.py [--batch 1,8,32,256] [--heads 12] [--seq 197] [--head-dim 64]

Prints one JSON line per (backend, batch), the same fields as the C++ bench.
The input layout matches ours: packed qkv {B, T, 3*D} viewed as q/k/v {B, H, T, hd}.
"""
import argparse
import json

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
import torch.nn.functional as F


def time_ms(fn, warmup=10, iters=50, reps=5):
    for i in range(warmup):
        fn(i)
    torch.cuda.synchronize()
    samples = []
    call = 0
    for _ in range(reps):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn(call)
            call += 1
        stop.record()
        stop.synchronize()
        samples.append(start.elapsed_time(stop) / iters)
    samples.sort()
    return samples[len(samples) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", default="1,8,32,256")
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--seq", type=int, default=197)
    ap.add_argument("--head-dim", type=int, default=64)
    a = ap.parse_args()
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    backends = {"torch_sdpa_flash": SDPBackend.FLASH_ATTENTION,
                "torch_sdpa_cudnn": SDPBackend.CUDNN_ATTENTION,
                "torch_sdpa_efficient": SDPBackend.EFFICIENT_ATTENTION}
    for b in [int(x) for x in a.batch.split(",")]:
        d = a.heads * a.head_dim
        nbytes = b * a.seq * 3 * d * 2
        rot = max(2, min(64, -(-3 * l2 // nbytes)))
        qkvs = [torch.rand(b, a.seq, 3 * d, device="cuda", dtype=torch.float16) * 2 - 1
                for _ in range(rot)]
        views = []
        for qkv in qkvs:
            q, k, v = qkv.view(b, a.seq, 3, a.heads, a.head_dim).permute(2, 0, 3, 1, 4)
            views.append((q, k, v))
        for name, backend in backends.items():
            try:
                with sdpa_kernel(backend):
                    ms = time_ms(lambda i: F.scaled_dot_product_attention(*views[i % rot]))
            except RuntimeError as e:
                print(json.dumps({"op": "attention", "impl": name, "batch": b, "error": str(e)[:200]}))
                continue
            flops = 4.0 * b * a.heads * a.seq * a.seq * a.head_dim
            print(json.dumps({"op": "attention", "impl": name, "batch": b, "heads": a.heads,
                              "seq": a.seq, "head_dim": a.head_dim, "ms": round(ms, 5),
                              "tflops": round(flops / (ms * 1e-3) / 1e12, 2)}), flush=True)


if __name__ == "__main__":
    main()
