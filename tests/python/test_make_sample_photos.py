"""tools/make_sample_photos.py: the demo / integration photo set."""
import collections
import os

import numpy as np
import pytest
from PIL import Image

import make_sample_photos


@pytest.fixture(scope="module")
def photo_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("photos")
    rows = make_sample_photos.build(str(out), seed=0)
    return out, rows


def test_at_least_90_decodable_photos_with_a_consistent_csv(photo_set):
    out, rows = photo_set
    assert rows == make_sample_photos.read_metadata(str(out))
    assert len(rows) >= 90
    assert len({r["path"] for r in rows}) == len(rows)
    on_disk = {os.path.relpath(os.path.join(d, f), out)
               for d, _, files in os.walk(out) for f in files if f != "metadata.csv"}
    assert on_disk == {r["path"] for r in rows}
    for r in rows:
        assert r["path"].split("/")[0] == r["source"]
        with Image.open(out / r["path"]) as im:
            assert im.format.lower() == r["format"]
            im.load()
            assert im.mode == "RGB" and min(im.size) >= 16 and max(im.size) <= 512
    per_source = collections.Counter(r["source"] for r in rows)
    assert len(per_source) >= 10
    assert set(per_source.values()) == {len(make_sample_photos.VARIANTS)}
    assert {r["format"] for r in rows} == {"jpeg", "png"}


def test_variants_differ_and_the_build_is_deterministic(photo_set, tmp_path):
    out, rows = photo_set
    again = make_sample_photos.build(str(tmp_path), seed=0)
    assert again == rows
    for r in rows[:18]:
        assert (out / r["path"]).read_bytes() == (tmp_path / r["path"]).read_bytes(), r["path"]
    digests = {(out / r["path"]).read_bytes() for r in rows if r["source"] == "chelsea"}
    assert len(digests) == len(make_sample_photos.VARIANTS)


def test_siblings_are_nearest_neighbours_with_the_real_model(photo_set):
    out, rows = photo_set
    vecs = make_sample_photos.embed_files(str(out), rows)
    assert vecs.shape == (len(rows), 1280)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    report = make_sample_photos.sibling_report(rows, vecs)
    assert report["top1_sibling_rate"] >= 0.95
    assert report["mean_precision_at_siblings"] >= 0.9
