"""Real photographs that ship inside installed Python packages.

Every photo here is read from a file inside an installed wheel (no download at
run time): scikit-image's bundled data directory and scikit-learn's sample
images. Only photographs are listed (no drawings, test patterns or synthetic
images). Photos are returned as PIL RGB images (grayscale photos are expanded
to three equal channels).

Used by make_reference.py (parity fixtures), prepare_weights.py (the real
EfficientNet-Lite0 check) and make_sample_photos.py (the demo photo set).
"""

import os
from typing import Dict, List, Tuple

from PIL import Image

# name -> (package, file inside the package's data directory, description)
_PHOTOS: Dict[str, Tuple[str, str, str]] = {
    "chelsea": ("skimage", "chelsea.png", "tabby cat"),
    "coffee": ("skimage", "coffee.png", "cup of coffee"),
    "astronaut": ("skimage", "astronaut.png", "astronaut portrait"),
    "rocket": ("skimage", "rocket.jpg", "rocket on the launch pad"),
    "motorcycle": ("skimage", "motorcycle_left.png", "motorcycle (stereo left view)"),
    "hubble": ("skimage", "hubble_deep_field.jpg", "Hubble deep field"),
    "retina": ("skimage", "retina.jpg", "retina fundus photo"),
    "ihc": ("skimage", "ihc.png", "immunohistochemistry micrograph"),
    "camera": ("skimage", "camera.png", "cameraman (grayscale)"),
    "moon": ("skimage", "moon.png", "moon surface (grayscale)"),
    "coins": ("skimage", "coins.png", "coins (grayscale)"),
    "china": ("sklearn", "china.jpg", "temple in China"),
    "flower": ("sklearn", "flower.jpg", "flower"),
}

# ImageNet-1k classes a correct classifier may give each photo (empty: no
# single well-defined class). Indices in the standard 1000-class order.
ACCEPTABLE_CLASSES: Dict[str, Tuple[int, ...]] = {
    "chelsea": (281, 282, 285),   # tabby cat, tiger cat, Egyptian cat
    "coffee": (504, 967, 968),    # coffee mug, espresso, cup
    "rocket": (657, 744, 812),    # missile, projectile, space shuttle
    "motorcycle": (665, 670),     # moped, motor scooter
}


def _data_dir(package: str) -> str:
    if package == "skimage":
        import skimage
        return os.path.join(os.path.dirname(skimage.__file__), "data")
    if package == "sklearn":
        import sklearn.datasets
        return os.path.join(os.path.dirname(sklearn.datasets.__file__), "images")
    raise ValueError(f"unknown photo package {package!r}")


def photo_path(name: str) -> str:
    """Absolute path of the bundled photo file `name` (a key of available())."""
    if name not in _PHOTOS:
        raise KeyError(f"unknown photo {name!r}; known: {sorted(_PHOTOS)}")
    package, filename, _ = _PHOTOS[name]
    return os.path.join(_data_dir(package), filename)


def available() -> List[str]:
    """Names of the photos whose files are present, in a fixed order."""
    names = []
    for name in _PHOTOS:
        try:
            if os.path.isfile(photo_path(name)):
                names.append(name)
        except ImportError:
            pass
    return names


def describe(name: str) -> str:
    return _PHOTOS[name][2]


def load(name: str) -> Image.Image:
    """The photo decoded to an RGB PIL image (8 bits per channel)."""
    with Image.open(photo_path(name)) as im:
        im.load()
        return im.convert("RGB")


def limit_size(im: Image.Image, longest: int) -> Image.Image:
    """Downscales (Lanczos) so the longest side is at most `longest` pixels."""
    w, h = im.size
    if max(w, h) <= longest:
        return im
    scale = longest / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return im.resize(size, Image.LANCZOS)
