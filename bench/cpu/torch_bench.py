"""PyTorch CPU peer for the CPU engine benchmark (bench/cpu/run.sh).

  torch_bench.py make-weights --model M --out W.safetensors
      Builds the reference model (torchvision resnet50, timm
      vit_base_patch16_224 / convnext_tiny / swin_tiny_patch4_window7_224,
      efficientnet_lite_pytorch efficientnet-lite0, torchvision
      mobilenet_v3_large / densenet121) with
      its default random init (fixed seed) and saves its state_dict (fp32,
      reference tensor names, no num_batches_tracked) for both engines to load.
  torch_bench.py time --model M --weights W.safetensors --threads T --batches 1,16 --reps R
      Loads those weights and times the embedding forward (backbone -> pooled
      features -> L2 normalize) under torch.inference_mode() in eval mode with
      torch.set_num_threads(T) on a preprocessed {B, 3, 224, 224} batch.
      ConvNets are timed in both contiguous and channels_last memory formats
      (both reported; the table takes the faster). One untimed warm-up per
      configuration, then the median of R timed calls. Preprocessing is NOT
      included on the PyTorch side (the Lookalike side includes it), so the
      ratio is conservative for Lookalike.
  torch_bench.py export-onnx --model M --weights W.safetensors --out M.onnx --check M.check.npz
      Exports the same embedding forward (contiguous NCHW input, dynamic
      batch) with torch.onnx.export at opset 17 for the ONNX Runtime and
      OpenVINO peers (bench/cpu/peer_bench.py), and saves a fixed {2, 3, 224,
      224} input with PyTorch's output on it, for each peer's one-time check.
  torch_bench.py table FILE.jsonl
      Prints the comparison table from every engine's JSON lines: PyTorch,
      and ONNX Runtime / OpenVINO when run.sh --peers measured them.
"""
import argparse
import json
import resource
import statistics
import sys

import torch

from bench_timing import time_calls

MODELS = {
    # preset name: (reference, embedding)
    "resnet50": "torchvision.models.resnet50",
    "vit_b16": "timm vit_base_patch16_224",
    "efficientnet_lite0": "efficientnet_lite_pytorch efficientnet-lite0",
    "convnext_tiny": "timm convnext_tiny",
    "swin_tiny": "timm swin_tiny_patch4_window7_224",
    "mobilenet_v3_large": "torchvision.models.mobilenet_v3_large",
    "densenet121": "torchvision.models.densenet121",
    # Text embeddings: transformers CLIPModel (OpenAI ViT-B/32 sizes, both
    # towers in the weights file), get_text_features on search-query-sized
    # token ids (bench_token_ids), L2-normalized. Lookalike: the clip_vit_b32
    # preset's EmbedTexts on the same ids.
    "clip_vit_b32_text": "transformers CLIPModel.get_text_features",
}
CONVNETS = ("resnet50", "efficientnet_lite0", "convnext_tiny", "mobilenet_v3_large", "densenet121")
# Presets whose timm model is timed through forward_head(pre_logits=True).
TIMM_ARCH = {"vit_b16": "vit_base_patch16_224", "convnext_tiny": "convnext_tiny",
             "swin_tiny": "swin_tiny_patch4_window7_224"}


def build(model):
    if model == "resnet50":
        import torchvision
        return torchvision.models.resnet50(weights=None)
    if model in TIMM_ARCH:
        import timm
        return timm.create_model(TIMM_ARCH[model], pretrained=False)
    if model == "efficientnet_lite0":
        from efficientnet_lite_pytorch import EfficientNet
        return EfficientNet.from_name("efficientnet-lite0")
    if model in ("mobilenet_v3_large", "densenet121"):
        import torchvision
        return getattr(torchvision.models, model)(weights=None)
    if model == "clip_vit_b32_text":
        from transformers import CLIPConfig, CLIPModel
        # transformers' defaults are OpenAI's ViT-B/32 (quick_gelu, argmax pooling).
        return CLIPModel(CLIPConfig())
    raise SystemExit(f"unknown model {model}")


def embed_fn(model_name, m):
    if model_name == "resnet50":
        body = torch.nn.Sequential(*list(m.children())[:-1])
        return lambda x: torch.nn.functional.normalize(body(x).flatten(1), dim=1)
    if model_name in TIMM_ARCH:
        return lambda x: torch.nn.functional.normalize(
            m.forward_head(m.forward_features(x), pre_logits=True), dim=1)
    if model_name == "efficientnet_lite0":
        return lambda x: torch.nn.functional.normalize(
            m._avg_pooling(m.extract_features(x)).flatten(1), dim=1)
    # The presets' embeddings: classifier.0 + hard-swish; relu(norm5) pooled.
    if model_name == "mobilenet_v3_large":
        return lambda x: torch.nn.functional.normalize(
            m.classifier[1](m.classifier[0](m.avgpool(m.features(x)).flatten(1))), dim=1)
    if model_name == "densenet121":
        return lambda x: torch.nn.functional.normalize(torch.nn.functional.adaptive_avg_pool2d(
            torch.relu(m.features(x)), 1).flatten(1), dim=1)
    if model_name == "clip_vit_b32_text":
        return lambda ids: torch.nn.functional.normalize(m.get_text_features(input_ids=ids), dim=1)
    raise SystemExit(model_name)


def bench_token_ids(batch):
    """The rule of BenchTokenIds in bench/cpu/embedder_bench.cc: text i is the
    start token, 6..18 fixed ids and the end token, 0-padded to the longest."""
    texts = []
    for i in range(batch):
        length = 8 + (i * 5) % 13
        texts.append([49406] + [1 + (i * 7919 + j * 104729) % 49404 for j in range(1, length - 1)]
                     + [49407])
    longest = max(len(t) for t in texts)
    return torch.tensor([t + [0] * (longest - len(t)) for t in texts], dtype=torch.int64)


def make_weights(args):
    from safetensors.torch import save_file
    torch.manual_seed(0)
    m = build(args.model)
    sd = {k: v.detach().to(torch.float32).contiguous().clone()
          for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(sd, args.out)
    print(f"wrote {len(sd)} tensors to {args.out}", file=sys.stderr)


def time_model(args):
    from safetensors.torch import load_file
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    m = build(args.model)
    missing, unexpected = m.load_state_dict(load_file(args.weights), strict=False)
    if [k for k in missing if not k.endswith("num_batches_tracked")] or unexpected:
        raise SystemExit(f"weights mismatch: missing {missing[:3]} unexpected {unexpected[:3]}")
    m.eval()
    formats = ["contiguous", "channels_last"] if args.model in CONVNETS else ["contiguous"]
    for b in [int(x) for x in args.batches.split(",")]:
        g = torch.Generator().manual_seed(b)
        x0 = bench_token_ids(b) if args.model == "clip_vit_b32_text" else \
            torch.randn(b, 3, 224, 224, generator=g)
        results, best_ms, cpu_ms = {}, {}, {}
        for fmt in formats:
            mm = m.to(memory_format=torch.channels_last) if fmt == "channels_last" else \
                m.to(memory_format=torch.contiguous_format)
            fn = embed_fn(args.model, mm)
            x = x0.contiguous(memory_format=torch.channels_last) if fmt == "channels_last" else x0
            with torch.inference_mode():
                ms, cpu = time_calls(lambda: fn(x), args.reps)
            results[fmt] = statistics.median(ms)
            best_ms[fmt] = min(ms)
            cpu_ms[fmt] = statistics.median(cpu)
        best = min(results, key=results.get)
        med = results[best]
        print(json.dumps({
            "impl": "pytorch", "model": args.model, "batch": b, "threads": args.threads,
            "images_per_s": round(b * 1e3 / med, 3), "ms_per_batch": round(med, 2),
            "best_ms": round(best_ms[best], 2), "cpu_ms_per_batch": round(cpu_ms[best], 2),
            "memory_format": best,
            "ms_by_format": {k: round(v, 2) for k, v in results.items()},
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "torch": torch.__version__}), flush=True)


class _Embedding(torch.nn.Module):
    """embed_fn as a module, for torch.onnx.export."""

    def __init__(self, model_name, m):
        super().__init__()
        self.m = m
        self.fn = embed_fn(model_name, m)

    def forward(self, x):
        return self.fn(x)


def export_onnx(args):
    import numpy as np
    from safetensors.torch import load_file
    if args.model == "clip_vit_b32_text":
        raise SystemExit("export-onnx: image models only")
    m = build(args.model)
    missing, unexpected = m.load_state_dict(load_file(args.weights), strict=False)
    if [k for k in missing if not k.endswith("num_batches_tracked")] or unexpected:
        raise SystemExit(f"weights mismatch: missing {missing[:3]} unexpected {unexpected[:3]}")
    m.eval()
    wrapped = _Embedding(args.model, m).eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(7))
    with torch.inference_mode():
        ref = wrapped(x)
    with torch.no_grad():
        torch.onnx.export(wrapped, (x,), args.out, opset_version=17, input_names=["images"],
                          output_names=["embeddings"],
                          dynamic_axes={"images": {0: "batch"}, "embeddings": {0: "batch"}})
    np.savez(args.check, images=x.numpy(), embeddings=ref.numpy())
    print(f"wrote {args.out} and {args.check}", file=sys.stderr)


# Engines of the table, in column order; the first is Lookalike, the rest peers.
ENGINES = [("lookalike", "ours"), ("pytorch", "torch"), ("onnxruntime", "ORT"),
           ("openvino", "OpenVINO")]


def table(args):
    """Aggregates rounds: per (model, batch, engine) the median over rounds of
    the per-process median wall time, the best wall time seen, and the median
    process CPU time. Ratios are Lookalike / peer throughput (> 1: faster):
    against PyTorch, and, when ONNX Runtime / OpenVINO were measured, against
    the better of those two on each measure (median wall, best call, CPU time)."""
    runs = {}
    for line in open(args.file):
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        runs.setdefault((r["model"], r["batch"]), {}).setdefault(r["impl"], []).append(r)

    def agg(rs):
        return {"med": statistics.median(r["ms_per_batch"] for r in rs),
                "best": min(r["best_ms"] for r in rs),
                "cpu": statistics.median(r["cpu_ms_per_batch"] for r in rs),
                "rss": max(r["peak_rss_mb"] for r in rs), "n": len(rs)}

    peers = [e for e in ("onnxruntime", "openvino") if any(e in r for r in runs.values())]
    label = dict(ENGINES)
    hdr = (f"{'model':<19}{'batch':>6}{'ours img/s':>11}{'torch img/s':>12}{'ratio':>7}"
           f"{'best ratio':>11}{'cpu ratio':>10}")
    hdr += "".join(f"{label[e] + ' img/s':>15}" for e in peers)
    if peers:
        hdr += f"{'vs best peer':>13}{'best ratio':>11}{'cpu ratio':>10}"
    hdr += f"{'ours RSS MB':>12}{'torch RSS MB':>13}"
    hdr += "".join(f"{label[e] + ' RSS':>13}" for e in peers)
    print(hdr + f"{'rounds':>7}")
    order = list(MODELS)
    for (model, batch), r in sorted(runs.items(), key=lambda kv: (
            order.index(kv[0][0]) if kv[0][0] in order else 99, kv[0][1])):
        if "lookalike" not in r or "pytorch" not in r or any(e not in r for e in peers):
            print(f"{model:<19}{batch:>6}  (missing an engine: have {sorted(r)})")
            continue
        o, p = agg(r["lookalike"]), agg(r["pytorch"])
        q = {e: agg(r[e]) for e in peers}
        line = (f"{model:<19}{batch:>6}{batch * 1e3 / o['med']:>11.2f}"
                f"{batch * 1e3 / p['med']:>12.2f}"
                f"{p['med'] / o['med']:>6.2f}x{p['best'] / o['best']:>10.2f}x"
                f"{p['cpu'] / o['cpu']:>9.2f}x")
        line += "".join(f"{batch * 1e3 / q[e]['med']:>15.2f}" for e in peers)
        if peers:
            line += (f"{min(q[e]['med'] for e in peers) / o['med']:>12.2f}x"
                     f"{min(q[e]['best'] for e in peers) / o['best']:>10.2f}x"
                     f"{min(q[e]['cpu'] for e in peers) / o['cpu']:>9.2f}x")
        line += f"{o['rss']:>12.0f}{p['rss']:>13.0f}"
        line += "".join(f"{q[e]['rss']:>13.0f}" for e in peers)
        print(line + f"{min([o['n'], p['n']] + [q[e]['n'] for e in peers]):>7}")
    checks = {}
    for r in runs.values():
        for e in peers:
            for x in r.get(e, []):
                if "max_abs_diff_vs_pytorch" in x:
                    checks[(x["model"], e)] = x["max_abs_diff_vs_pytorch"]
    for (model, e), d in sorted(checks.items()):
        print(f"check: {label[e]} {model}: max |peer - PyTorch| = {d:.2e} "
              "(L2-normalized embeddings, 2 random images)")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("make-weights")
    w.add_argument("--model", required=True, choices=list(MODELS))
    w.add_argument("--out", required=True)
    t = sub.add_parser("time")
    t.add_argument("--model", required=True, choices=list(MODELS))
    t.add_argument("--weights", required=True)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--batches", default="1,16")
    t.add_argument("--reps", type=int, default=5)
    x = sub.add_parser("export-onnx")
    x.add_argument("--model", required=True, choices=list(MODELS))
    x.add_argument("--weights", required=True)
    x.add_argument("--out", required=True)
    x.add_argument("--check", required=True)
    tb = sub.add_parser("table")
    tb.add_argument("file")
    args = ap.parse_args()
    {"make-weights": make_weights, "time": time_model, "export-onnx": export_onnx,
     "table": table}[args.cmd](args)


if __name__ == "__main__":
    main()
