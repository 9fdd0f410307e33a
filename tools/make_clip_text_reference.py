#!/usr/bin/env python3
"""Writes the CLIP text-tower parity fixture: a random-initialized Hugging Face
CLIPModel (both towers) and its text and image features.

  .venv/bin/python tools/make_clip_text_reference.py --out DIR [--variant V] [--seed S]

Variants (the two text-tower rules transformers 4.40.2's CLIPTextTransformer
switches on, from the checkpoint's config):
  legacy   hidden_act quick_gelu, eos_token_id 2: pooling at argmax(ids)
           (the original OpenAI CLIP configs);
  gelu_eos hidden_act gelu, eos_token_id 49407: pooling at the first
           position holding 49407 (newer configs).
  clip_vit_b32  the clip_vit_b32 preset's full dimensions with the gelu_eos
           rules, for the Embedder (which reads config.json).

The configuration is small for CI speed but keeps the real structure: CLIP's
real vocabulary (49408) and context (77), several layers and heads (head dim
16), a projection to a shared space narrower than either tower.

DIR/model.safetensors
    CLIPModel.state_dict() (fp32), transformers' names: text_model.*,
    vision_model.*, text_projection, visual_projection, logit_scale. Every
    LayerNorm's weight and bias and every zero bias is randomized (so all
    affine terms matter); the class embedding too.
DIR/config.json
    The CLIPModel config (transformers' save_pretrained form).
DIR/reference.safetensors
    token_ids      i32 {T, 77}  open_clip.tokenize of the texts (the tokenizer
                                 CLIP was trained with; start, BPE ids, end, 0 pad)
    text_features  f32 {T, P}   CLIPModel.get_text_features(input_ids), not normalized
    pixel_values   f32 {I, S, S, 3}  random normalized images, NHWC
    image_features f32 {I, P}   CLIPModel.get_image_features(pixel_values NCHW)
    similarity     f32 {I, T}   cosine similarity of the L2-normalized features
                                 (CLIPModel's logits_per_image / logit_scale)
  __metadata__: config (JSON: the CLIPModel text_config and vision_config
    fields the engine needs), texts (JSON list), variant, seed,
    open_clip_vocab (path of bpe_simple_vocab_16e6.txt.gz).

  .venv/bin/python tools/make_clip_text_reference.py --search DIR

adds, for the server's end-to-end test (tests/integration/text_test.cc), to a
clip_vit_b32 fixture DIR written before:
DIR/vocab.json, DIR/merges.txt
    open_clip's vocabulary in Hugging Face's form (the server's default
    tokenizer: the files beside the weights).
DIR/search/NAME.png
    224 x 224 images (the preset's input size: resize and crop are identity),
    smooth random colour fields.
DIR/search/reference.json
    {"images": [NAME...], "texts": [...], "similarity": [[image x text]]}:
    cosine similarity of CLIPModel's image features (pixels / 255 normalized
    with CLIP's mean and std) and text features (open_clip.tokenize ids).
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

TEXTS = [
    "a photo of a cat",
    "a photo of a dog",
    "A diagram of the Krebs cycle, drawn by hand on a whiteboard.",
    "red",
    "",
    "Zwei Katzen schlafen auf dem Sofa",
    "東京の夜景",
    "an emoji party 🎉🎈 with 100% more confetti!!!",
    "the quick brown fox jumps over the lazy dog " * 3,
    # open_clip turns the spelled special token into the end token, so this
    # text pools at position 1 and embeds exactly like "" (a pair at
    # distance 0: the pooling position is checked, not only the tokens).
    "<end_of_text> spelled inside the text",
    "I'm sure it's what they'd've wanted",
    "x-ray of a broken left wrist, AP view",
    "a very long caption " + " ".join(f"word{i}" for i in range(120)),
    "  leading and trailing   spaces  ",
    "3.14159 26535 89793",
    "a black and white photograph of a lighthouse in a storm",
]


def config(variant: str):
    from transformers import CLIPConfig
    if variant == "legacy":
        act, eos = "quick_gelu", 2
    elif variant in ("gelu_eos", "clip_vit_b32"):
        act, eos = "gelu", 49407
    else:
        raise ValueError(f"unknown variant {variant!r}")
    if variant == "clip_vit_b32":
        # The clip_vit_b32 preset's dimensions (OpenAI ViT-B/32), loaded
        # through the Embedder; config.json says gelu + eos_token_id 49407
        # where the preset says quick_gelu + argmax, so parity proves the
        # checkpoint's config is followed.
        text = dict(vocab_size=49408, hidden_size=512, intermediate_size=2048,
                    num_hidden_layers=12, num_attention_heads=8, max_position_embeddings=77,
                    hidden_act=act, layer_norm_eps=1e-5, bos_token_id=49406, eos_token_id=eos,
                    pad_token_id=1, projection_dim=512)
        vision = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                      num_attention_heads=12, image_size=224, patch_size=32, num_channels=3,
                      hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=512)
        return CLIPConfig(text_config=text, vision_config=vision, projection_dim=512), text, vision
    text = dict(vocab_size=49408, hidden_size=64, intermediate_size=160, num_hidden_layers=3,
                num_attention_heads=4, max_position_embeddings=77, hidden_act=act,
                layer_norm_eps=1e-5, bos_token_id=49406, eos_token_id=eos, pad_token_id=1,
                projection_dim=48)
    vision = dict(hidden_size=80, intermediate_size=192, num_hidden_layers=2,
                  num_attention_heads=5, image_size=64, patch_size=16, num_channels=3,
                  hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=48)
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=48), text, vision


def randomize_(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                d = module.normalized_shape
                module.weight.copy_(1.0 + torch.randn(d, generator=g) * 0.2)
                module.bias.copy_(torch.randn(d, generator=g) * 0.1)
        for name, param in model.named_parameters():
            if name.endswith("class_embedding"):
                param.copy_(torch.randn(param.shape, generator=g) * 0.5)
            elif param.numel() > 1 and bool((param == 0).all()):
                param.copy_(torch.randn(param.shape, generator=g) * 0.05)


SEARCH_TEXTS = ["a red square", "a photo of a dog on the beach", "blue",
                "green leaves in the morning sun", "Zwei Katzen", "東京の夜景"]
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def write_search_fixture(dirname: str, images: int = 6, seed: int = 7) -> None:
    import open_clip
    from open_clip.tokenizer import SimpleTokenizer
    from PIL import Image
    from safetensors.torch import load_file
    from transformers import CLIPConfig, CLIPModel

    tok = SimpleTokenizer()
    with open(os.path.join(dirname, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(tok.encoder, f, ensure_ascii=False)
    merges = sorted(tok.bpe_ranks.items(), key=lambda kv: kv[1])
    with open(os.path.join(dirname, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        f.write("\n".join(f"{a} {b}" for (a, b), _ in merges))
    model = CLIPModel(CLIPConfig.from_json_file(os.path.join(dirname, "config.json"))).eval()
    missing, unexpected = model.load_state_dict(
        load_file(os.path.join(dirname, "model.safetensors")), strict=False)
    # The file holds the floating-point tensors only (no position_ids buffers).
    assert not unexpected and all(k.endswith("position_ids") for k in missing), (missing, unexpected)
    out = os.path.join(dirname, "search")
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    names, pixels = [], []
    for i in range(images):
        # A coarse random field upsampled: smooth, so the image is not noise.
        coarse = torch.rand(1, 3, 4, 4, generator=g)
        img = torch.nn.functional.interpolate(coarse, size=(224, 224), mode="bilinear",
                                              align_corners=False)[0]
        u8 = (img * 255).round().clamp(0, 255).to(torch.uint8)
        name = f"img{i}"
        Image.fromarray(u8.permute(1, 2, 0).numpy()).save(os.path.join(out, name + ".png"))
        x = u8.float() / 255.0
        mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
        std = torch.tensor(CLIP_STD).view(3, 1, 1)
        pixels.append((x - mean) / std)
        names.append(name)
    ids = open_clip.tokenize(SEARCH_TEXTS).to(torch.int64)
    with torch.no_grad():
        image = torch.nn.functional.normalize(
            model.get_image_features(pixel_values=torch.stack(pixels)).float(), dim=-1)
        text = torch.nn.functional.normalize(
            model.get_text_features(input_ids=ids).float(), dim=-1)
    sim = (image @ text.T).tolist()
    with open(os.path.join(out, "reference.json"), "w", encoding="utf-8") as f:
        json.dump({"images": names, "texts": SEARCH_TEXTS, "similarity": sim}, f,
                  ensure_ascii=False)
    print(f"clip search fixture: {images} images, {len(SEARCH_TEXTS)} texts in {out}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--search", metavar="DIR",
                    help="add the server test's images, vocabulary and similarities to DIR")
    ap.add_argument("--out")
    ap.add_argument("--variant", default="legacy", choices=["legacy", "gelu_eos", "clip_vit_b32"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--images", type=int, default=6)
    args = ap.parse_args(argv)
    if args.search:
        write_search_fixture(args.search)
        return 0
    if not args.out:
        ap.error("--out is required")

    import open_clip
    from safetensors.torch import save_file
    from transformers import CLIPModel

    torch.manual_seed(args.seed)
    cfg, text_cfg, vision_cfg = config(args.variant)
    model = CLIPModel(cfg).eval()
    randomize_(model, args.seed)

    ids = open_clip.tokenize(TEXTS).to(torch.int64)  # {T, 77}
    assert ids.shape == (len(TEXTS), 77), ids.shape
    g = torch.Generator().manual_seed(args.seed + 2)
    size = vision_cfg["image_size"]
    pixels = torch.randn(args.images, 3, size, size, generator=g)
    with torch.no_grad():
        text = model.get_text_features(input_ids=ids).float()
        image = model.get_image_features(pixel_values=pixels).float()
    tn = torch.nn.functional.normalize(text, dim=-1)
    im = torch.nn.functional.normalize(image, dim=-1)
    similarity = im @ tn.T

    os.makedirs(args.out, exist_ok=True)
    sd = {k: v.detach().contiguous().float() for k, v in model.state_dict().items()
          if v.is_floating_point()}
    save_file(sd, os.path.join(args.out, "model.safetensors"))
    model.config.to_json_file(os.path.join(args.out, "config.json"))
    vocab = os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz")
    meta = {
        "config": json.dumps({"text_config": text_cfg, "vision_config": vision_cfg,
                              "projection_dim": cfg.projection_dim}),
        "texts": json.dumps(TEXTS, ensure_ascii=False),
        "variant": args.variant,
        "seed": str(args.seed),
        "reference": "transformers.CLIPModel.get_text_features / get_image_features",
        "open_clip_vocab": vocab,
    }
    ref = {
        "token_ids": ids.to(torch.int32).contiguous(),
        "text_features": text.contiguous(),
        "pixel_values": pixels.permute(0, 2, 3, 1).contiguous(),
        "image_features": image.contiguous(),
        "similarity": similarity.contiguous(),
    }
    save_file(ref, os.path.join(args.out, "reference.safetensors"), metadata=meta)
    d = torch.cdist(tn, tn)
    off = d[~torch.eye(len(TEXTS), dtype=torch.bool)]
    print(f"clip text fixture {args.variant}: {len(TEXTS)} texts, {args.images} images, "
          f"median distance between texts {off.median():.4f}, min {off.min():.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
