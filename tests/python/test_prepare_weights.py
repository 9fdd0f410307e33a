"""tools/prepare_weights.py: the real EfficientNet-Lite0 weights file."""
import os

import pytest
import torch
from safetensors.torch import load_file, save_file

import prepare_weights


def test_writes_verifies_and_is_idempotent(tmp_path):
    out = str(tmp_path / "weights" / "efficientnet_lite0.safetensors")
    first = prepare_weights.prepare(out)
    assert first["action"] == "written" and first["tensors"] == 247
    w = load_file(out)
    assert w["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert w["_fc.weight"].shape == (1000, 1280)
    assert not any(k.endswith("num_batches_tracked") for k in w)
    # The package's reference model with this file sees a cat and a coffee.
    assert first["check"]["chelsea"]["top1"] in (281, 282, 285)
    assert first["check"]["coffee"]["top1"] in (504, 967, 968)
    mtime = os.path.getmtime(out)
    second = prepare_weights.prepare(out)
    assert second["action"] == "unchanged" and os.path.getmtime(out) == mtime


def test_a_damaged_file_is_rewritten(tmp_path):
    out = str(tmp_path / "efficientnet_lite0.safetensors")
    prepare_weights.prepare(out)
    w = load_file(out)
    w["_bn1.running_var"] = torch.zeros_like(w["_bn1.running_var"])
    save_file(w, out)
    assert prepare_weights.prepare(out)["action"] == "written"
    assert load_file(out)["_bn1.running_var"].min() > 0


def test_verification_rejects_wrong_weights(tmp_path):
    out = str(tmp_path / "bad.safetensors")
    prepare_weights.prepare(out)
    w = load_file(out)
    torch.manual_seed(0)
    w["_fc.weight"] = torch.randn_like(w["_fc.weight"])
    save_file(w, out)
    with pytest.raises(SystemExit, match="unexpected top-1"):
        prepare_weights.verify(out)
