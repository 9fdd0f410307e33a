"""tools/convert_weights.py: .pth -> .safetensors keeps every weight exactly."""
import os

import pytest
import torch
from safetensors.torch import load_file

import convert_weights


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 4)


def _random_net(seed=0):
    torch.manual_seed(seed)
    net = _Net()
    with torch.no_grad():
        for t in list(net.parameters()) + [net.bn.running_mean, net.bn.running_var]:
            t.copy_(torch.randn_like(t))
    net.bn.num_batches_tracked.fill_(7)
    return net


def test_state_dict_round_trip_is_exact(tmp_path):
    net = _random_net()
    src = tmp_path / "net.pth"
    torch.save(net.state_dict(), src)
    summary = convert_weights.convert(str(src), str(tmp_path / "net.safetensors"), quiet=True)
    out = load_file(tmp_path / "net.safetensors")
    expected = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert set(out) == set(expected)
    for k, v in expected.items():
        assert out[k].dtype == torch.float32
        assert torch.equal(out[k], v), k
    assert summary["tensors"] == len(expected) and summary["dropped"] == 1


def test_pickled_module_and_wrapped_checkpoints_give_the_same_names(tmp_path):
    net = _random_net(1)
    torch.save(net, tmp_path / "full.pt")
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in net.state_dict().items()}},
               tmp_path / "dp.pth")
    convert_weights.convert(str(tmp_path / "full.pt"), str(tmp_path / "a.safetensors"), quiet=True)
    convert_weights.convert(str(tmp_path / "dp.pth"), str(tmp_path / "b.safetensors"), quiet=True)
    a, b = load_file(tmp_path / "a.safetensors"), load_file(tmp_path / "b.safetensors")
    assert set(a) == set(b) == {"conv.weight", "conv.bias", "bn.weight", "bn.bias",
                                "bn.running_mean", "bn.running_var", "fc.weight", "fc.bias"}
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_shared_and_non_contiguous_tensors_are_written_as_copies(tmp_path):
    base = torch.randn(6, 4)
    state = {"emb.weight": base, "head.weight": base,          # tied
             "t.weight": base.t(),                              # non-contiguous view
             "half.weight": base[:3]}                           # slice of the same storage
    torch.save(state, tmp_path / "tied.pth")
    convert_weights.convert(str(tmp_path / "tied.pth"), str(tmp_path / "tied.safetensors"),
                            quiet=True)
    out = load_file(tmp_path / "tied.safetensors")
    assert torch.equal(out["emb.weight"], base) and torch.equal(out["head.weight"], base)
    assert torch.equal(out["t.weight"], base.t()) and out["t.weight"].shape == (4, 6)
    assert torch.equal(out["half.weight"], base[:3])
    _, _, shared = convert_weights.prepare_tensors(torch.load(tmp_path / "tied.pth"))
    assert sorted(map(sorted, shared)) == [["emb.weight", "half.weight", "head.weight",
                                            "t.weight"]]


@pytest.mark.parametrize("dtype,torch_dtype", [("f16", torch.float16), ("bf16", torch.bfloat16)])
def test_dtype_cast(tmp_path, dtype, torch_dtype):
    net = _random_net(2)
    torch.save(net.state_dict(), tmp_path / "n.pth")
    convert_weights.convert(str(tmp_path / "n.pth"), str(tmp_path / "n.safetensors"), dtype=dtype,
                            quiet=True)
    out = load_file(tmp_path / "n.safetensors")
    assert out["fc.weight"].dtype == torch_dtype
    assert torch.equal(out["fc.weight"], net.fc.weight.detach().to(torch_dtype))


def test_kept_half_precision_and_f64_becomes_f32(tmp_path):
    state = {"a": torch.randn(3, dtype=torch.float16), "b": torch.randn(3, dtype=torch.float64)}
    torch.save(state, tmp_path / "m.pth")
    convert_weights.convert(str(tmp_path / "m.pth"), str(tmp_path / "m.safetensors"), quiet=True)
    out = load_file(tmp_path / "m.safetensors")
    assert out["a"].dtype == torch.float16 and torch.equal(out["a"], state["a"])
    assert out["b"].dtype == torch.float32 and torch.equal(out["b"], state["b"].float())


def test_bad_inputs_are_errors(tmp_path):
    torch.save({"w": torch.tensor([1.0, float("nan")])}, tmp_path / "nan.pth")
    with pytest.raises(convert_weights.ConversionError, match="w: contains NaN"):
        convert_weights.convert(str(tmp_path / "nan.pth"), str(tmp_path / "x.safetensors"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    assert convert_weights.main([str(tmp_path / "junk.pth"), str(tmp_path / "y.safetensors")]) == 1
    assert not os.path.exists(tmp_path / "x.safetensors")
    assert not os.path.exists(tmp_path / "y.safetensors")
    with pytest.raises(convert_weights.ConversionError, match="no such file"):
        convert_weights.convert(str(tmp_path / "missing.pth"), str(tmp_path / "z.safetensors"))


# ---- --timm-arch: timm's own renaming and a full name / shape check --------------

def _timm_state(arch):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    return timm.create_model(arch, pretrained=False).state_dict()


def _facebook_convnext_names(state):
    """timm convnext names -> the facebookresearch release's (what timm's
    checkpoint_filter_fn maps back)."""
    import re
    out = {}
    for k, v in state.items():
        k = k.replace("stem.", "downsample_layers.0.")
        k = re.sub(r"stages\.(\d+)\.downsample\.(\d+)", r"downsample_layers.\1.\2", k)
        k = re.sub(r"stages\.(\d+)\.blocks\.(\d+)", r"stages.\1.\2", k)
        k = k.replace("conv_dw", "dwconv").replace("mlp.fc", "pwconv")
        k = k.replace("head.fc.", "head.").replace("head.norm.", "norm.")
        out[k] = v
    return out


def test_timm_arch_renames_an_original_convnext_release(tmp_path):
    state = _timm_state("convnext_atto")
    src = tmp_path / "fb.pth"
    torch.save({"model": _facebook_convnext_names(state)}, src)
    dst = tmp_path / "convnext.safetensors"
    assert convert_weights.main([str(src), str(dst), "--timm-arch", "convnext_atto"]) == 0
    out = load_file(dst)
    assert set(out) == set(state)
    for k, v in state.items():
        assert torch.equal(out[k], v), k


def test_timm_arch_swin_drops_buffers_and_keeps_weights(tmp_path):
    state = _timm_state("swin_tiny_patch4_window7_224")
    saved = dict(state)
    # Buffers older timm versions saved with the weights.
    saved["layers.0.blocks.1.attn_mask"] = torch.zeros(64, 49, 49)
    saved["layers.0.blocks.0.attn.relative_position_index"] = torch.zeros(49, 49, dtype=torch.long)
    torch.save(saved, tmp_path / "swin.pth")
    convert_weights.convert(str(tmp_path / "swin.pth"), str(tmp_path / "swin.safetensors"),
                            quiet=True, timm_arch="swin_tiny_patch4_window7_224")
    out = load_file(tmp_path / "swin.safetensors")
    assert set(out) == set(state)
    assert torch.equal(out["layers.0.blocks.0.attn.relative_position_bias_table"],
                       state["layers.0.blocks.0.attn.relative_position_bias_table"])


def test_timm_arch_names_missing_misshaped_and_unexpected_tensors(tmp_path):
    state = dict(_timm_state("deit_small_distilled_patch16_224"))
    del state["dist_token"]
    state["blocks.3.mlp.fc1.weight"] = torch.zeros(10, 384)
    state["extra.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "deit.pth")
    with pytest.raises(convert_weights.ConversionError) as e:
        convert_weights.convert(str(tmp_path / "deit.pth"), str(tmp_path / "deit.safetensors"),
                                timm_arch="deit_small_distilled_patch16_224")
    msg = str(e.value)
    assert "1 missing: dist_token" in msg
    assert "blocks.3.mlp.fc1.weight [10, 384] (expected [1536, 384])" in msg
    assert "1 unexpected: extra.weight" in msg
    assert not os.path.exists(tmp_path / "deit.safetensors")
    with pytest.raises(convert_weights.ConversionError, match="--timm-arch no_such_net"):
        convert_weights.convert(str(tmp_path / "deit.pth"), str(tmp_path / "x.safetensors"),
                                timm_arch="no_such_net")
# ---- torchvision MobileNet, VGG, DenseNet, GoogLeNet / Inception ------------

def _torchvision(arch, **kwargs):
    import torchvision
    torch.manual_seed(0)
    return getattr(torchvision.models, arch)(weights=None, **kwargs)


def test_densenet_released_names_are_renamed_like_torchvision(tmp_path):
    net = _torchvision("densenet121")
    current = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    # The released densenet121-a639ec97.pth spells "denselayer1.norm.1.weight".
    old = {}
    for k, v in current.items():
        for part in ("norm1", "relu1", "conv1", "norm2", "relu2", "conv2"):
            k = k.replace(f".{part}.", f".{part[:-1]}.{part[-1]}.")
        old[k] = v
    assert "features.denseblock1.denselayer1.norm.1.weight" in old
    torch.save(old, tmp_path / "old.pth")
    convert_weights.convert(str(tmp_path / "old.pth"), str(tmp_path / "d.safetensors"),
                            quiet=True, torchvision_arch="densenet121")
    out = load_file(tmp_path / "d.safetensors")
    assert set(out) == set(current)
    for k, v in current.items():
        assert torch.equal(out[k], v), k


@pytest.mark.parametrize("arch,kwargs", [
    ("mobilenet_v3_small", {}),
    ("googlenet", {"aux_logits": False, "init_weights": False}),  # aux classifiers optional
])
def test_torchvision_arch_accepts_the_architecture(tmp_path, arch, kwargs):
    torch.save(_torchvision(arch, **kwargs).state_dict(), tmp_path / "m.pth")
    s = convert_weights.convert(str(tmp_path / "m.pth"), str(tmp_path / "m.safetensors"),
                                quiet=True, torchvision_arch=arch)
    assert s["tensors"] > 0


def test_torchvision_arch_names_missing_misshaped_and_unexpected_tensors(tmp_path):
    sd = _torchvision("mobilenet_v2").state_dict()
    del sd["features.1.conv.0.0.weight"]
    sd["classifier.1.weight"] = torch.zeros(10, 1280)
    sd["head.weight"] = torch.zeros(3)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(convert_weights.ConversionError) as e:
        convert_weights.convert(str(tmp_path / "bad.pth"), str(tmp_path / "bad.safetensors"),
                                quiet=True, torchvision_arch="mobilenet_v2")
    msg = str(e.value)
    assert "missing 1: features.1.conv.0.0.weight [32, 1, 3, 3]" in msg
    assert "classifier.1.weight: expected [1000, 1280], found [10, 1280]" in msg
    assert "unexpected 1: head.weight" in msg
    assert not os.path.exists(tmp_path / "bad.safetensors")


def test_torchvision_arch_rejects_an_unknown_architecture(tmp_path):
    torch.save(_random_net().state_dict(), tmp_path / "n.pth")
    with pytest.raises(convert_weights.ConversionError, match="unknown architecture 'vgg11'"):
        convert_weights.convert(str(tmp_path / "n.pth"), str(tmp_path / "n.safetensors"),
                                quiet=True, torchvision_arch="vgg11")
