"""Writes PIL / torchvision reference outputs for the CPU preprocessing test.

For each case: the decoded RGB8 image, PIL's resize of it (the torchvision
Resize(int) size rule; PIL's own uint8 resampling), and the full torchvision
eval transform Resize -> CenterCrop -> ToTensor -> Normalize as NHWC float32.
preprocess_test.cc reads the file and compares models/cpu/preprocess.cc
against both.

Images: real photographs bundled with scikit-image (chelsea, coffee,
astronaut, rocket) plus synthetic ones that reach the paths photos do not
(upscaling, a crop larger than the image, one axis not resized, extreme
aspect). Without scikit-image only the synthetic images are written.

File layout (little endian): b"LKPP", u32 version=1, u32 count, then per case
  u32 height, width, resize_shorter, crop_h, crop_w, interpolation (0 bilinear,
  1 bicubic), resized_h, resized_w, name_len; name bytes;
  u8 image[height*width*3]; u8 resized[resized_h*resized_w*3];
  f32 out[crop_h*crop_w*3]
"""
import argparse
import struct
import sys

try:
    import numpy as np
    from PIL import Image
    import torch
    from torchvision import transforms
    from torchvision.transforms import InterpolationMode
except ImportError as e:  # reference stack absent: tell the C++ test to skip
    _missing = e
else:
    _missing = None

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def photos():
    try:
        from skimage import data
    except ImportError:
        print("scikit-image not installed: synthetic images only", file=sys.stderr)
        return []
    return [("chelsea", data.chelsea()), ("coffee", data.coffee()),
            ("astronaut", data.astronaut()), ("rocket", data.rocket())]


def synthetic():
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, size=(97, 131, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:40, 0:30]
    grad = np.stack([yy * 6, xx * 8, (yy + xx) * 3], axis=-1).clip(0, 255).astype(np.uint8)
    tall = rng.integers(0, 256, size=(500, 120, 3), dtype=np.uint8)
    keep_h = rng.integers(0, 256, size=(256, 300, 3), dtype=np.uint8)
    edges = np.zeros((180, 240, 3), dtype=np.uint8)  # hard edges: overshoot and clamping
    edges[:, 120:] = 255
    edges[90:, :, 1] = 255
    return [("noise_97x131", noise), ("gradient_40x30", grad), ("tall_500x120", tall),
            ("height_kept_256x300", keep_h), ("edges_180x240", edges)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if _missing is not None:
        with open(args.out + ".skip", "w") as f:
            f.write(f"Python reference stack missing: {_missing}")
        print(f"skip: {_missing}")
        return
    images = dict(photos() + synthetic())
    # (image, resize_shorter, crop_h, crop_w, interpolation)
    cases = [
        ("chelsea", 256, 224, 224, 0), ("chelsea", 224, 224, 224, 1),
        ("coffee", 256, 224, 224, 1), ("coffee", 248, 224, 224, 0),
        ("astronaut", 248, 224, 224, 1), ("astronaut", 256, 224, 224, 0),
        ("rocket", 256, 224, 224, 0), ("rocket", 232, 200, 216, 1),
        ("noise_97x131", 256, 224, 224, 1), ("noise_97x131", 160, 150, 150, 0),
        ("gradient_40x30", 64, 80, 72, 0), ("tall_500x120", 224, 224, 224, 1),
        ("height_kept_256x300", 256, 224, 224, 0), ("edges_180x240", 100, 96, 96, 1),
        ("edges_180x240", 100, 96, 96, 0),
    ]
    cases = [c for c in cases if c[0] in images]
    with open(args.out, "wb") as f:
        f.write(b"LKPP" + struct.pack("<II", 1, len(cases)))
        for name, resize, ch, cw, interp in cases:
            arr = np.ascontiguousarray(images[name][:, :, :3].astype(np.uint8))
            mode = InterpolationMode.BICUBIC if interp else InterpolationMode.BILINEAR
            pil = Image.fromarray(arr, "RGB")
            resized = transforms.Resize(resize, interpolation=mode)(pil)
            tf = transforms.Compose([
                transforms.Resize(resize, interpolation=mode),
                transforms.CenterCrop((ch, cw)),
                transforms.ToTensor(),
                transforms.Normalize(MEAN, STD),
            ])
            out = tf(pil).permute(1, 2, 0).contiguous().numpy().astype(np.float32)
            r = np.asarray(resized, dtype=np.uint8)
            h, w = arr.shape[:2]
            nb = name.encode()
            f.write(struct.pack("<9I", h, w, resize, ch, cw, interp, r.shape[0], r.shape[1], len(nb)))
            f.write(nb)
            f.write(arr.tobytes())
            f.write(np.ascontiguousarray(r).tobytes())
            f.write(out.tobytes())
    print(f"wrote {len(cases)} cases to {args.out}")


if __name__ == "__main__":
    if _missing is None:
        torch.set_num_threads(1)
    main()
