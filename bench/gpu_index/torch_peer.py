#!/usr/bin/env python3
"""Peers for the GPU flat index benchmark: torch.mm + torch.topk on the GPU
(and CPU FAISS IndexFlatIP when the faiss Python module is installed).

Same databases, batches, k, data distribution (uniform(-1, 1), fp16) and
metric (inner product) as bench/gpu_index/gpu_index_bench.cc. Timing: CUDA
events around mm + topk after separate warm-up; the distance matrix is
materialized (torch has no fused top-k). Batches whose nq x rows fp16 matrix
does not fit run in query chunks of 256 (reported as chunked).

Usage: torch_peer.py [--quick] [--json FILE] [--min-seconds S] [--cpu-faiss]
"""
import argparse
import json
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--min-seconds", type=float, default=1.0)
    ap.add_argument("--cpu-faiss", action="store_true",
                    help="also time CPU FAISS IndexFlatIP (slow; needs the faiss module)")
    args = ap.parse_args()

    import torch
    if not torch.cuda.is_available():
        print("torch_peer: no CUDA device; nothing measured", file=sys.stderr)
        return 1
    datasets = [("1M x 768", 1_000_000, 768), ("10M x 128", 10_000_000, 128)]
    if args.quick:
        datasets = [("100k x 768", 100_000, 768), ("1M x 128", 1_000_000, 128)]
    batches = [1, 16, 256, 1024]
    ks = [10, 100]
    out = open(args.json, "w") if args.json else None
    gen = torch.Generator(device="cuda").manual_seed(0)
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    print("| database | batch | k | torch latency ms | QPS | note |")
    print("|---|---|---|---|---|---|")
    for name, rows, dim in datasets:
        xb = (torch.rand(rows, dim, generator=gen, device="cuda", dtype=torch.float16) * 2 - 1)
        for nq in batches:
            q = torch.rand(nq, dim, generator=gen, device="cuda", dtype=torch.float16) * 2 - 1
            for k in ks:
                free = torch.cuda.mem_get_info()[0]
                chunk = nq if nq * rows * 2 * 3 < free else 256

                def run():
                    res = []
                    for s in range(0, nq, chunk):
                        d = torch.mm(q[s:s + chunk], xb.t())
                        res.append(torch.topk(d, k, dim=1))
                    return res

                for _ in range(3):
                    run()
                torch.cuda.synchronize()
                start = torch.cuda.Event(enable_timing=True)
                stop = torch.cuda.Event(enable_timing=True)
                iters, total_ms = 0, 0.0
                t0 = time.perf_counter()
                while iters < 5 or time.perf_counter() - t0 < args.min_seconds:
                    start.record()
                    run()
                    stop.record()
                    stop.synchronize()
                    total_ms += start.elapsed_time(stop)
                    iters += 1
                lat = total_ms / iters
                note = "" if chunk == nq else f"chunked by {chunk}"
                print(f"| {name} | {nq} | {k} | {lat:.3f} | {nq / (lat / 1e3):.0f} | {note} |",
                      flush=True)
                if out:
                    out.write(json.dumps({"impl": "torch", "rows": rows, "dim": dim, "batch": nq,
                                          "k": k, "latency_ms": lat, "iters": iters,
                                          "note": note}) + "\n")
        del xb
        torch.cuda.empty_cache()

    try:
        import faiss  # noqa: F401
        have_faiss = True
    except ImportError:
        have_faiss = False
    if not args.cpu_faiss:
        print("CPU FAISS: not requested (--cpu-faiss)")
    elif not have_faiss:
        print("CPU FAISS: the faiss Python module is not installed here; CPU path not measured")
    else:
        import numpy as np
        import faiss
        rng = np.random.default_rng(0)
        print("| database | batch | k | CPU FAISS latency ms | QPS |")
        print("|---|---|---|---|---|")
        for name, rows, dim in datasets:
            xb = (rng.random((rows, dim), dtype=np.float32) * 2 - 1)
            index = faiss.IndexFlatIP(dim)
            index.add(xb)
            for nq in (1, 16, 256):
                q = rng.random((nq, dim), dtype=np.float32) * 2 - 1
                for k in ks:
                    index.search(q, k)
                    t0 = time.perf_counter()
                    index.search(q, k)
                    lat = (time.perf_counter() - t0) * 1e3
                    print(f"| {name} | {nq} | {k} | {lat:.1f} | {nq / (lat / 1e3):.0f} |", flush=True)
                    if out:
                        out.write(json.dumps({"impl": "faiss_cpu", "rows": rows, "dim": dim,
                                              "batch": nq, "k": k, "latency_ms": lat}) + "\n")
    if out:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
