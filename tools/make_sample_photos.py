#!/usr/bin/env python3
"""Builds the demo / integration-test photo set from photographs shipped by
installed packages (scikit-image's bundled photos, scikit-learn's sample
images; see photos.py), deterministically.

  .venv/bin/python tools/make_sample_photos.py --out DIR [--seed S] [--verify]

Each base photo (longest side limited to 512 px) is written with nine variants:
  original      the photo, JPEG quality 92
  crop_a/crop_b random crops keeping 55-80% of each side, JPEG 90
  flip          horizontal mirror, JPEG 90
  zoom          centered 1.25-1.4x zoom, JPEG 90
  rotate        rotated 4-9 degrees either way, then cropped to drop the
                corners the rotation leaves empty, JPEG 90
  jitter        brightness / contrast / saturation changed by up to 20%, JPEG 90
  jpeg_q25      the original at JPEG quality 25 (block artifacts)
  png           downscaled to 70%, lossless PNG
to DIR/<source>/<variant>.{jpg,png}, plus DIR/metadata.csv with the columns
path (relative to DIR), source, variant, format ("jpeg" / "png"). Siblings
(variants of one source) are the expected nearest neighbours of each other:
--verify embeds every file with the real EfficientNet-Lite0
(weights/efficientnet_lite0.safetensors, see prepare_weights.py, or the
package's .pth) and reports how many of each photo's nearest neighbours are its
siblings. Existing files under DIR are overwritten; nothing else is removed.
"""

import argparse
import csv
import io
import json
import os
import sys
from typing import Dict, List

import numpy as np
from PIL import Image, ImageEnhance

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import photos  # noqa: E402

LONGEST = 512
VARIANTS = ("original", "crop_a", "crop_b", "flip", "zoom", "rotate", "jitter",
            "jpeg_q25", "png")
# motorcycle_right is the other half of the stereo pair (same scene): left out.
SOURCES = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "hubble", "retina",
           "ihc", "camera", "moon", "coins", "china", "flower")


def _random_crop(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = im.size
    fw, fh = rng.uniform(0.55, 0.8, size=2)
    cw, ch = max(16, int(w * fw)), max(16, int(h * fh))
    x = int(rng.integers(0, w - cw + 1))
    y = int(rng.integers(0, h - ch + 1))
    return im.crop((x, y, x + cw, y + ch))


def _zoom(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = im.size
    z = float(rng.uniform(1.25, 1.4))
    cw, ch = int(w / z), int(h / z)
    x, y = (w - cw) // 2, (h - ch) // 2
    return im.crop((x, y, x + cw, y + ch)).resize((w, h), Image.BICUBIC)


def _rotate(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    deg = float(rng.uniform(4, 9)) * (1 if rng.integers(0, 2) else -1)
    w, h = im.size
    r = im.rotate(deg, resample=Image.BICUBIC, expand=False)
    # Largest centered axis-aligned box free of the empty corners.
    a = np.deg2rad(abs(deg))
    s, c = np.sin(a), np.cos(a)
    side_long, side_short = max(w, h), min(w, h)
    if side_short <= 2.0 * s * c * side_long or abs(s - c) < 1e-10:
        x = 0.5 * side_short
        wr, hr = (x / s, x / c) if w >= h else (x / c, x / s)
    else:
        cos_2a = c * c - s * s
        wr, hr = (w * c - h * s) / cos_2a, (h * c - w * s) / cos_2a
    wr, hr = int(wr), int(hr)
    x0, y0 = (w - wr) // 2, (h - hr) // 2
    return r.crop((x0, y0, x0 + wr, y0 + hr))


def _jitter(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    b, c, s = rng.uniform(0.8, 1.2, size=3)
    im = ImageEnhance.Brightness(im).enhance(float(b))
    im = ImageEnhance.Contrast(im).enhance(float(c))
    return ImageEnhance.Color(im).enhance(float(s))


def make_variants(base: Image.Image, rng: np.random.Generator) -> Dict[str, tuple]:
    """variant -> (image, format, save options)."""
    w, h = base.size
    jpg = ("jpeg", {"quality": 90})
    return {
        "original": (base, "jpeg", {"quality": 92}),
        "crop_a": (_random_crop(base, rng), *jpg),
        "crop_b": (_random_crop(base, rng), *jpg),
        "flip": (base.transpose(Image.FLIP_LEFT_RIGHT), *jpg),
        "zoom": (_zoom(base, rng), *jpg),
        "rotate": (_rotate(base, rng), *jpg),
        "jitter": (_jitter(base, rng), *jpg),
        "jpeg_q25": (base, "jpeg", {"quality": 25}),
        "png": (base.resize((max(1, int(w * 0.7)), max(1, int(h * 0.7))), Image.LANCZOS),
                "png", {"optimize": False}),
    }


def encode(im: Image.Image, fmt: str, opts: dict) -> bytes:
    buf = io.BytesIO()
    if fmt == "jpeg":
        im.save(buf, format="JPEG", subsampling=2, **opts)  # 4:2:0, baseline
    else:
        im.save(buf, format="PNG", **opts)
    return buf.getvalue()


def build(out: str, seed: int = 0) -> List[dict]:
    """Writes the photo set; returns the metadata rows."""
    names = [n for n in SOURCES if n in photos.available()]
    if len(names) < 6:
        raise SystemExit(f"only {len(names)} bundled photos found ({names}); "
                         "install tools/requirements.txt")
    rows = []
    for i, name in enumerate(names):
        rng = np.random.default_rng([seed, i])
        base = photos.limit_size(photos.load(name), LONGEST)
        os.makedirs(os.path.join(out, name), exist_ok=True)
        for variant, (im, fmt, opts) in make_variants(base, rng).items():
            ext = "jpg" if fmt == "jpeg" else "png"
            rel = f"{name}/{variant}.{ext}"
            with open(os.path.join(out, rel), "wb") as f:
                f.write(encode(im.convert("RGB"), fmt, opts))
            rows.append({"path": rel, "source": name, "variant": variant, "format": fmt})
    with open(os.path.join(out, "metadata.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "source", "variant", "format"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def read_metadata(out: str) -> List[dict]:
    with open(os.path.join(out, "metadata.csv"), newline="") as f:
        return list(csv.DictReader(f))


def embed_files(out: str, rows: List[dict], weights: str = "") -> np.ndarray:
    """L2-normalized real EfficientNet-Lite0 embeddings {len(rows), 1280}."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet
    import make_reference
    import prepare_weights

    preset = make_reference.PRESETS["efficientnet_lite0"]
    model = EfficientNet.from_name("efficientnet-lite0")
    if weights and os.path.isfile(weights):
        from safetensors.torch import load_file
        state = load_file(weights)
    else:
        state = torch.load(prepare_weights.package_weights_path(), map_location="cpu")
    model.load_state_dict(state, strict=False)
    model.eval()
    tf = make_reference.eval_transform(preset)
    vecs = []
    with torch.no_grad():
        for start in range(0, len(rows), 16):
            batch = []
            for r in rows[start:start + 16]:
                with Image.open(os.path.join(out, r["path"])) as im:
                    batch.append(tf(im.convert("RGB")))
            x = torch.stack(batch)
            f = model._avg_pooling(model.extract_features(x)).flatten(1)
            vecs.append(torch.nn.functional.normalize(f, dim=1))
    return torch.cat(vecs).numpy()


def sibling_report(rows: List[dict], vecs: np.ndarray) -> dict:
    """For each photo, the share of its k nearest neighbours (k = siblings
    count, itself excluded) that are siblings; also whether the single nearest
    neighbour is a sibling."""
    sources = np.array([r["source"] for r in rows])
    sim = vecs @ vecs.T
    np.fill_diagonal(sim, -np.inf)
    precisions, top1 = [], []
    for i in range(len(rows)):
        k = int((sources == sources[i]).sum()) - 1
        order = np.argsort(-sim[i], kind="stable")[:k]
        precisions.append(float((sources[order] == sources[i]).mean()))
        top1.append(bool(sources[order[0]] == sources[i]))
    worst = sorted(range(len(rows)), key=lambda i: precisions[i])[:5]
    return {"photos": len(rows), "top1_sibling_rate": float(np.mean(top1)),
            "mean_precision_at_siblings": float(np.mean(precisions)),
            "worst": [{"path": rows[i]["path"], "precision": precisions[i]} for i in worst]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verify", action="store_true",
                    help="embed with the real EfficientNet-Lite0 and report sibling retrieval")
    ap.add_argument("--weights", default="", help="EfficientNet-Lite0 .safetensors for --verify")
    args = ap.parse_args(argv)
    rows = build(args.out, args.seed)
    summary = {"out": args.out, "photos": len(rows),
               "sources": len({r["source"] for r in rows})}
    if args.verify:
        import torch
        torch.set_num_threads(1)
        summary["siblings"] = sibling_report(rows, embed_files(args.out, rows, args.weights))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
