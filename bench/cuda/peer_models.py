#!/usr/bin/env python3
"""Peer for cuda_model_bench: the same backbones in PyTorch, fp16, channels_last,
eager and torch.compile, on the same random weights.

  python3 bench/cuda/peer_models.py --out DIR [--presets resnet50,vit_b16,efficientnet_lite0]
        [--batch 1,8,32,128,256] [--iters 20] [--compile-mode default]

For each preset: builds the reference model (torchvision resnet50, timm
vit_base_patch16_224, efficientnet_lite_pytorch EfficientNet lite0) with a fixed
random initialization, writes DIR/<preset>.safetensors (its state_dict, the
weights cuda_model_bench loads), and prints one JSON line per (impl, batch).
Timed: forward of the backbone features (the embedding: ResNet pooled
features, ViT cls token after the final norm, EfficientNet pooled head
features) on a preprocessed input, CUDA events, 3 warm-up calls.
"""
import argparse
import json
import os

import torch


def build(preset):
    """(module whose state_dict is the weight file, forward returning the embedding)."""
    if preset == "resnet50":
        import torchvision
        m = torchvision.models.resnet50()
        trunk = torch.nn.Sequential(*list(m.children())[:-1])  # up to the avg pool, pre-fc
        return m, (lambda x: torch.flatten(trunk(x), 1))
    if preset == "vit_b16":
        import timm
        m = timm.create_model("vit_base_patch16_224", pretrained=False)
        return m, (lambda x: m.forward_head(m.forward_features(x), pre_logits=True))
    if preset == "efficientnet_lite0":
        from efficientnet_lite_pytorch import EfficientNet
        m = EfficientNet.from_name("efficientnet-lite0")
        return m, (lambda x: m.extract_features(x).mean((2, 3)))
    raise ValueError(preset)


def time_ms(fn, x, iters):
    for _ in range(3):
        fn(x)
    torch.cuda.synchronize()
    samples = []
    for _ in range(3):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(iters):
            fn(x)
        b.record()
        b.synchronize()
        samples.append(a.elapsed_time(b) / iters)
    samples.sort()
    return samples[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--presets", default="resnet50,vit_b16,efficientnet_lite0")
    ap.add_argument("--batch", default="1,8,32,128,256")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--compile-mode", default="default")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    from safetensors.torch import save_file
    torch.manual_seed(0)
    for preset in a.presets.split(","):
        try:
            built = build(preset)
        except ImportError as e:
            print(json.dumps({"op": "model", "preset": preset, "error": f"reference package missing: {e}"}))
            continue
        model, fwd = built
        # Full state_dict (classifier heads included: the presets ignore them).
        state = {k: v.contiguous() for k, v in model.state_dict().items()
                 if not k.endswith("num_batches_tracked")}
        save_file(state, os.path.join(a.out, f"{preset}.safetensors"))
        model.cuda().eval().half().to(memory_format=torch.channels_last)
        compiled = torch.compile(fwd, mode=a.compile_mode)
        for b in [int(v) for v in a.batch.split(",")]:
            x = torch.randn(b, 3, 224, 224, device="cuda", dtype=torch.float16).to(
                memory_format=torch.channels_last)
            with torch.inference_mode():
                for name, fn in (("torch_eager_fp16_cl", fwd), (f"torch_compile_{a.compile_mode}", compiled)):
                    try:
                        ms = time_ms(fn, x, a.iters)
                    except Exception as e:  # noqa: BLE001 - report and go on
                        print(json.dumps({"op": "model", "preset": preset, "impl": name, "batch": b,
                                          "error": str(e)[:200]}), flush=True)
                        continue
                    print(json.dumps({"op": "model", "preset": preset, "impl": name, "batch": b,
                                      "ms": round(ms, 4), "img_per_s": round(b / (ms * 1e-3), 1)}),
                          flush=True)


if __name__ == "__main__":
    main()
