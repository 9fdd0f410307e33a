"""tools/make_reference.py: parity fixtures are deterministic, self-consistent and
described exactly by their metadata."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.numpy import load_file as load_np
from safetensors.torch import load_file as load_torch

import make_reference


def _meta(path):
    with safe_open(str(path), "np") as f:
        return f.metadata()


def _pairwise_median(emb):
    d = np.linalg.norm(emb[:, None] - emb[None], axis=-1)
    return float(np.median(d[~np.eye(len(emb), dtype=bool)]))


def _manual_preprocess(img, meta):
    """The documented transform, written out independently of torchvision."""
    h, w = img.shape[:2]
    size = int(meta["resize_shorter"])
    crop_h, crop_w = int(meta["crop_height"]), int(meta["crop_width"])
    if min(h, w) != size:
        if w <= h:
            nw, nh = size, int(size * h / w)
        else:
            nh, nw = size, int(size * w / h)
        resample = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[meta["interpolation"]]
        img = np.asarray(Image.fromarray(img).resize((nw, nh), resample))
        h, w = nh, nw
    top, left = int(round((h - crop_h) / 2.0)), int(round((w - crop_w) / 2.0))
    x = img[top:top + crop_h, left:left + crop_w].astype(np.float32) / 255.0
    return (x - np.array(json.loads(meta["mean"]), np.float32)) / np.array(
        json.loads(meta["std"]), np.float32)


@pytest.fixture(scope="module")
def resnet18_twice(tmp_path_factory):
    a, b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    make_reference.make_reference("resnet18", str(a), num_images=4)
    make_reference.make_reference("resnet18", str(b), num_images=4)
    return a, b


def test_resnet18_fixture_is_deterministic(resnet18_twice):
    a, b = resnet18_twice
    for name in ("weights.safetensors", "reference.safetensors"):
        ta, tb = load_np(a / name), load_np(b / name)
        assert set(ta) == set(tb)
        for k in ta:
            assert ta[k].dtype == tb[k].dtype and np.array_equal(ta[k], tb[k]), (name, k)
        assert _meta(a / name) == _meta(b / name)


def test_resnet18_fixture_layout_and_metadata(resnet18_twice):
    d, _ = resnet18_twice
    ref = load_np(d / "reference.safetensors")
    meta = _meta(d / "reference.safetensors")
    assert meta["preset"] == "resnet18" and meta["family"] == "resnet"
    assert (meta["resize_shorter"], meta["crop_height"], meta["crop_width"]) == ("256", "224", "224")
    assert meta["interpolation"] == "bilinear" and meta["dim"] == "512"
    assert json.loads(meta["mean"]) == [0.485, 0.456, 0.406]
    assert json.loads(meta["std"]) == [0.229, 0.224, 0.225]
    assert json.loads(meta["config"])["photos"] == ["chelsea", "coffee", "astronaut", "rocket"]
    sizes = set()
    for i in range(4):
        img = ref[f"image_{i}"]
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        assert max(img.shape[:2]) <= 512
        sizes.add(img.shape)
    assert len(sizes) >= 3  # varied sizes / aspects
    assert ref["preprocessed"].shape == (4, 224, 224, 3) and ref["preprocessed"].dtype == np.float32
    emb = ref["embeddings"]
    assert emb.shape == (4, 512) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert _pairwise_median(emb) > 0.1  # different photos give clearly different vectors
    assert "logits" not in ref and "labels" not in ref


def test_metadata_describes_the_preprocessing_exactly(resnet18_twice):
    d, _ = resnet18_twice
    ref = load_np(d / "reference.safetensors")
    meta = _meta(d / "reference.safetensors")
    for i in range(4):
        np.testing.assert_allclose(_manual_preprocess(ref[f"image_{i}"], meta),
                                   ref["preprocessed"][i], atol=1e-5)


def test_resnet18_weights_are_randomized_and_reproduce_the_embeddings(resnet18_twice):
    import torchvision
    d, _ = resnet18_twice
    w = load_torch(d / "weights.safetensors")
    assert not any(k.endswith("num_batches_tracked") for k in w)
    assert all(v.dtype == torch.float32 for v in w.values())
    assert "fc.weight" in w and w["fc.weight"].shape == (1000, 512)
    # BatchNorm terms differ from the identity defaults (so folding matters).
    assert w["bn1.running_var"].sub(1).abs().max() > 0.1
    assert w["layer1.0.bn1.running_mean"].abs().max() > 0.01
    assert w["layer4.1.bn2.bias"].abs().max() > 0.01
    model = torchvision.models.resnet18()
    model.load_state_dict(w, strict=False)
    model.eval()
    ref = load_np(d / "reference.safetensors")
    x = torch.from_numpy(ref["preprocessed"]).permute(0, 3, 1, 2)
    with torch.no_grad():
        f = torch.nn.Sequential(*list(model.children())[:-1])(x).flatten(1)
    emb = torch.nn.functional.normalize(f, dim=1).numpy()
    np.testing.assert_allclose(emb, ref["embeddings"], atol=1e-5)


def test_dinov2_checkpoint_grid_and_resampled_positions(tmp_path):
    make_reference.make_reference("dinov2_vits14", str(tmp_path), num_images=2)
    w = load_torch(tmp_path / "weights.safetensors")
    ref = load_torch(tmp_path / "reference.safetensors")
    assert w["pos_embed"].shape == (1, 1 + 37 * 37, 384)
    assert "head.weight" not in w
    gamma = w["blocks.0.ls1.gamma"]
    assert gamma.min() >= 0.3  # layer scale randomized away from 1e-5
    grid = w["pos_embed"][:, 1:].reshape(1, 37, 37, 384).permute(0, 3, 1, 2)
    small = torch.nn.functional.interpolate(grid, size=(16, 16), mode="bicubic",
                                            antialias=True, align_corners=False)
    expected = torch.cat([w["pos_embed"][:, :1], small.permute(0, 2, 3, 1).reshape(1, 256, 384)], 1)
    assert ref["pos_embed_resampled"].shape == (1, 257, 384)
    torch.testing.assert_close(ref["pos_embed_resampled"], expected, rtol=0, atol=1e-6)
    assert ref["embeddings"].shape == (2, 384)
    meta = _meta(tmp_path / "reference.safetensors")
    assert (meta["resize_shorter"], meta["crop_height"], meta["interpolation"]) == (
        "256", "224", "bicubic")


def test_efficientnet_lite0_real_weights_logits_and_labels(tmp_path):
    t = make_reference.make_reference("efficientnet_lite0", str(tmp_path), real_weights=True,
                                      num_images=2)
    assert t["logits"].shape == (2, 1000) and t["logits"].dtype == np.float32
    top1 = t["logits"].argmax(1)
    assert top1[0] in (281, 282, 285) and top1[1] in (504, 967, 968)
    assert t["labels"].tolist() == top1.tolist()
    assert t["acceptable_labels"][0].tolist() == [281, 282, 285, -1]
    meta = _meta(tmp_path / "reference.safetensors")
    assert meta["weights"] == "real" and meta["interpolation"] == "bicubic"
    assert json.loads(meta["mean"]) == pytest.approx([127 / 255] * 3)
    w = load_torch(tmp_path / "weights.safetensors")
    assert len(w) == 247 and "_blocks.15._project_conv.weight" in w


def test_unknown_preset_and_bad_image_count_are_rejected(tmp_path):
    with pytest.raises(SystemExit, match="unknown preset"):
        make_reference.make_reference("resnet19", str(tmp_path))
    with pytest.raises(SystemExit, match="--images"):
        make_reference.make_reference("resnet18", str(tmp_path), num_images=0)
    with pytest.raises(SystemExit, match="no real weights"):
        make_reference.make_reference("resnet18", str(tmp_path), real_weights=True)
