"""tools/convert_weights.py --from openclip: an OpenCLIP-shaped CLIP state_dict
(built by hand from the known shapes, random values: open_clip's model code
needs a newer torch than the reference stack's) converts to names and a
config.json that transformers' CLIPModel loads with strict=True, and that
CLIPModel gives the features a direct OpenCLIP-style forward of the original
tensors gives (text: causal attention, pooling at argmax(ids); image: class
token after ln_post).
"""
import json
import os

import pytest
import torch
import torch.nn.functional as F

import convert_weights

WIDTH, VWIDTH, LAYERS, VLAYERS, VOCAB, CONTEXT, PATCH, GRID, PROJ = 128, 128, 2, 2, 1000, 16, 8, 4, 96


def _openclip_state(seed=0):
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=0.05):
        return torch.randn(*shape, generator=g) * scale

    sd = {"token_embedding.weight": r(VOCAB, WIDTH, scale=0.5),
          "positional_embedding": r(CONTEXT, WIDTH, scale=0.2),
          "ln_final.weight": 1 + r(WIDTH, scale=0.2), "ln_final.bias": r(WIDTH),
          "text_projection": r(WIDTH, PROJ, scale=0.1),
          "logit_scale": torch.tensor(4.6052),
          "attn_mask": torch.full((CONTEXT, CONTEXT), float("-inf")).triu(1),
          "visual.class_embedding": r(VWIDTH, scale=0.5),
          "visual.positional_embedding": r(GRID * GRID + 1, VWIDTH, scale=0.2),
          "visual.conv1.weight": r(VWIDTH, 3, PATCH, PATCH),
          "visual.ln_pre.weight": 1 + r(VWIDTH, scale=0.2), "visual.ln_pre.bias": r(VWIDTH),
          "visual.ln_post.weight": 1 + r(VWIDTH, scale=0.2), "visual.ln_post.bias": r(VWIDTH),
          "visual.proj": r(VWIDTH, PROJ, scale=0.1)}
    for prefix, width, layers in (("transformer", WIDTH, LAYERS),
                                  ("visual.transformer", VWIDTH, VLAYERS)):
        for n in range(layers):
            p = f"{prefix}.resblocks.{n}"
            sd.update({f"{p}.ln_1.weight": 1 + r(width, scale=0.2), f"{p}.ln_1.bias": r(width),
                       f"{p}.attn.in_proj_weight": r(3 * width, width),
                       f"{p}.attn.in_proj_bias": r(3 * width),
                       f"{p}.attn.out_proj.weight": r(width, width),
                       f"{p}.attn.out_proj.bias": r(width),
                       f"{p}.ln_2.weight": 1 + r(width, scale=0.2), f"{p}.ln_2.bias": r(width),
                       f"{p}.mlp.c_fc.weight": r(4 * width, width),
                       f"{p}.mlp.c_fc.bias": r(4 * width),
                       f"{p}.mlp.c_proj.weight": r(width, 4 * width),
                       f"{p}.mlp.c_proj.bias": r(width)})
    return sd


def _ln(x, sd, p):
    return F.layer_norm(x, (x.shape[-1],), sd[p + ".weight"], sd[p + ".bias"], 1e-5)


def _blocks(x, sd, prefix, layers, heads, mask, act):
    n, length, width = x.shape
    d = width // heads
    for i in range(layers):
        p = f"{prefix}.resblocks.{i}"
        h = _ln(x, sd, p + ".ln_1")
        qkv = h @ sd[p + ".attn.in_proj_weight"].T + sd[p + ".attn.in_proj_bias"]
        q, k, v = (t.reshape(n, length, heads, d).transpose(1, 2) for t in qkv.chunk(3, dim=-1))
        scores = q @ k.transpose(-1, -2) / d ** 0.5
        if mask is not None:
            scores = scores + mask
        o = (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, length, width)
        x = x + o @ sd[p + ".attn.out_proj.weight"].T + sd[p + ".attn.out_proj.bias"]
        h = _ln(x, sd, p + ".ln_2")
        h = act(h @ sd[p + ".mlp.c_fc.weight"].T + sd[p + ".mlp.c_fc.bias"])
        x = x + h @ sd[p + ".mlp.c_proj.weight"].T + sd[p + ".mlp.c_proj.bias"]
    return x


def _openclip_features(sd, ids, pixels, act):
    """OpenCLIP's CLIP.encode_text / encode_image, written from its definition."""
    x = sd["token_embedding.weight"][ids] + sd["positional_embedding"]
    mask = torch.full((ids.shape[1], ids.shape[1]), float("-inf")).triu(1)
    x = _blocks(x, sd, "transformer", LAYERS, WIDTH // 64, mask, act)
    x = _ln(x, sd, "ln_final")
    text = x[torch.arange(ids.shape[0]), ids.argmax(dim=-1)] @ sd["text_projection"]
    y = F.conv2d(pixels, sd["visual.conv1.weight"], stride=PATCH).flatten(2).transpose(1, 2)
    cls = sd["visual.class_embedding"].expand(y.shape[0], 1, -1)
    y = torch.cat([cls, y], dim=1) + sd["visual.positional_embedding"]
    y = _blocks(_ln(y, sd, "visual.ln_pre"), sd, "visual.transformer", VLAYERS, VWIDTH // 64,
                None, act)
    image = _ln(y[:, 0], sd, "visual.ln_post") @ sd["visual.proj"]
    return text, image


@pytest.mark.parametrize("act", ["quick_gelu", "gelu"])
def test_openclip_converts_to_clipmodel_with_the_same_features(tmp_path, act):
    from safetensors.torch import load_file
    from transformers import CLIPConfig, CLIPModel

    sd = _openclip_state()
    src = tmp_path / "open_clip_model.pt"
    torch.save(sd, src)
    dst = tmp_path / "out" / "model.safetensors"
    summary = convert_weights.convert_openclip(str(src), str(dst), act=act, quiet=True)
    assert summary["dropped"] == 0
    with open(tmp_path / "out" / "config.json") as f:
        config = json.load(f)
    assert config["text_config"]["num_attention_heads"] == WIDTH // 64
    assert config["vision_config"]["image_size"] == GRID * PATCH
    model = CLIPModel(CLIPConfig(**config)).eval()
    model.load_state_dict(load_file(dst), strict=True)

    g = torch.Generator().manual_seed(3)
    ids = torch.randint(1, VOCAB - 1, (3, CONTEXT), generator=g)
    for row, end in enumerate((4, 9, CONTEXT - 1)):  # the end token: the largest id
        ids[row, end] = VOCAB - 1
        ids[row, end + 1:] = 0
    pixels = torch.randn(2, 3, GRID * PATCH, GRID * PATCH, generator=g)
    quick = act == "quick_gelu"
    fn = (lambda x: x * torch.sigmoid(1.702 * x)) if quick else F.gelu
    with torch.no_grad():
        want_text, want_image = _openclip_features(sd, ids, pixels, fn)
        got_text = model.get_text_features(input_ids=ids)
        got_image = model.get_image_features(pixel_values=pixels)
    torch.testing.assert_close(got_text, want_text, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got_image, want_image, rtol=1e-4, atol=1e-5)
    # A wrong activation is visible: the check above can fail.
    other = (lambda x: F.gelu(x)) if quick else (lambda x: x * torch.sigmoid(1.702 * x))
    with torch.no_grad():
        wrong_text, _ = _openclip_features(sd, ids, pixels, other)
    assert not torch.allclose(got_text, wrong_text, rtol=1e-4, atol=1e-5)


def test_openclip_command_line_and_errors(tmp_path):
    sd = _openclip_state(1)
    torch.save(sd, tmp_path / "in.pt")
    out = tmp_path / "m" / "model.safetensors"
    assert convert_weights.main([str(tmp_path / "in.pt"), str(out), "--from", "openclip",
                                 "--act", "gelu"]) == 0
    assert json.load(open(tmp_path / "m" / "config.json"))["text_config"]["hidden_act"] == "gelu"
    del sd["visual.proj"]
    with pytest.raises(convert_weights.ConversionError, match="visual.proj"):
        convert_weights.openclip_to_hf(sd)
    sd = _openclip_state(1)
    sd["visual.attnpool.weight"] = torch.zeros(2)
    with pytest.raises(convert_weights.ConversionError, match="attnpool"):
        convert_weights.openclip_to_hf(sd)
