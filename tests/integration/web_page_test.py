"""The web page end to end in a real headless Chromium (Debian's chromium and
chromedriver, driven by Selenium): the real lookalike-server with the real
EfficientNet-Lite0 weights and a catalog of sample photos in a collection that
keeps 256 px thumbnails (one item also carries a small picture in its image_url
metadata, which the page prefers), then, as a shopper would: upload a catalog
photo and see that item first with its picture, loaded from the server's
thumbnail URL; "more like this"; a category filter chip; a text file and a
corrupt photo, each with a clear message. Saves
screenshots to $LOOKALIKE_SCREENSHOT_DIR (the build directory); with
LOOKALIKE_UPDATE_SCREENSHOT=1 also docs/web_page.png.

Environment (tests/integration/CMakeLists.txt sets it): LOOKALIKE_SERVER_BIN,
LOOKALIKE_WEIGHTS, LOOKALIKE_PHOTOS, LOOKALIKE_SOURCE_DIR.
"""
import base64
import csv
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request

import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
VARIANTS = ("original", "crop_a", "flip", "png")
COLLECTION = "catalog"
THUMBNAIL_SIZE = 256
IMAGE_URL_ITEM = "chelsea/flip.jpg"  # carries metadata image_url; the rest use thumbnails

if not (CHROMIUM and CHROMEDRIVER):
    # Exit code 77: CTest reports the test as skipped (SKIP_RETURN_CODE).
    pytest.exit("skipped: Debian's chromium and chromium-driver are not installed "
                "(tools/install_deps.sh installs them)", returncode=77)


def api(base, method, body):
    request = urllib.request.Request(base + "/lookalike.v1.Lookalike/" + method,
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def picture_url(path):
    """A small JPEG data URL: metadata values are limited to 4 KiB."""
    image = Image.open(path).convert("RGB")
    image.thumbnail((96, 96))
    for quality in (75, 60, 45, 30, 20):
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=quality)
        url = "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()
        if len(url) <= 4000:
            return url
    raise AssertionError(path + ": no picture under 4 KiB")


@pytest.fixture(scope="module")
def server():
    photos = os.environ["LOOKALIKE_PHOTOS"]
    work = tempfile.mkdtemp(prefix="lookalike_web_")
    log_path = os.path.join(work, "server.log")
    log = open(log_path, "w")
    process = subprocess.Popen(
        [os.environ["LOOKALIKE_SERVER_BIN"], "--listen", "127.0.0.1:0", "--metrics-listen", "",
         "--http-listen", "127.0.0.1:0", "--data-dir", os.path.join(work, "data"), "--device", "cpu",
         "--model", "efficientnet_lite0=efficientnet_lite0:" + os.environ["LOOKALIKE_WEIGHTS"]],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        base = None
        deadline = time.time() + 90
        while time.time() < deadline and base is None:
            assert process.poll() is None, open(log_path).read()
            found = re.search(r"web page on (http://127\.0\.0\.1:\d+)/", open(log_path).read())
            base = found.group(1) if found else None
            time.sleep(0.1)
        assert base, open(log_path).read()
        api(base, "CreateCollection", {"name": COLLECTION, "thumbnailSize": THUMBNAIL_SIZE})
        items = []
        with open(os.path.join(photos, "metadata.csv")) as f:
            for row in csv.DictReader(f):
                if row["variant"] not in VARIANTS:
                    continue
                path = os.path.join(photos, row["path"])
                with open(path, "rb") as image:
                    data = base64.b64encode(image.read()).decode()
                metadata = {"source": row["source"], "variant": row["variant"]}
                if row["path"] == IMAGE_URL_ITEM:
                    metadata["image_url"] = picture_url(path)
                items.append({"id": row["path"], "image": data, "metadata": metadata})
        reply = api(base, "Upsert", {"collection": COLLECTION, "items": items})
        assert int(reply.get("failed", "0")) == 0, reply
        yield base, photos, work
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def results(driver):
    """(id, {metadata}, picture loaded, picture URL) of each result, in order."""
    return driver.execute_script("""
        return [...document.querySelectorAll('#results li')].map((li) => {
          const img = li.querySelector('img.picture');
          const md = {};
          li.querySelectorAll('dd').forEach((dd) => { md[dd.dataset.key] = dd.textContent; });
          return [li.dataset.id, md, !!img && img.complete && img.naturalWidth > 0,
                  img ? img.currentSrc || img.src : ""];
        });""")


def wait_for(condition, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def message(driver):
    from selenium.webdriver.common.by import By
    element = driver.find_element(By.ID, "message")
    return element.text, "error" in (element.get_attribute("class") or "")


def screenshot(driver, name):
    out_dir = os.environ.get("LOOKALIKE_SCREENSHOT_DIR", tempfile.gettempdir())
    os.makedirs(out_dir, exist_ok=True)
    driver.save_screenshot(os.path.join(out_dir, name))
    if os.environ.get("LOOKALIKE_UPDATE_SCREENSHOT") == "1" and name == "web_page.png":
        driver.save_screenshot(os.path.join(os.environ["LOOKALIKE_SOURCE_DIR"], "docs", name))


def test_shopper_flow(server, browser):
    from selenium.webdriver.common.by import By
    base, photos, work = server
    driver = browser
    driver.get(base + "/")
    wait_for(lambda: "Choose, drop or take a photo" in message(driver)[0], "the collection to load")
    assert driver.find_element(By.ID, "collection").get_attribute("value") == COLLECTION
    # EfficientNet-Lite0 has no text tower: no "describe it" box.
    assert not driver.find_element(By.ID, "text-form").is_displayed()

    # A catalog photo: its own item first, with its picture.
    query = "chelsea/original.jpg"
    driver.find_element(By.ID, "file").send_keys(os.path.join(photos, query))
    wait_for(lambda: results(driver) and results(driver)[0][0] == query, "results for " + query)
    first = wait_for(lambda: results(driver)[0][2] and results(driver)[0], "the first picture")
    assert first[1]["source"] == "chelsea"
    # No image_url for it: the picture is the server's thumbnail of the item.
    assert first[3] == (base + "/collections/" + COLLECTION + "/items/chelsea%2Foriginal.jpg"
                        "/thumbnail"), first[3]
    size = driver.execute_script(
        "const img = document.querySelector('#results li img.picture');"
        "return [img.naturalWidth, img.naturalHeight];")
    assert max(size) == THUMBNAIL_SIZE, size  # the sample photos are larger than 256 px
    hits = results(driver)
    assert len(hits) > 4
    # Its siblings (other variants of the same photo) come next.
    assert {h[1]["source"] for h in hits[:4]} == {"chelsea"}, hits[:4]
    # The first row's pictures load (the rest load lazily, when scrolled to):
    # image_url where the item has one, else its thumbnail.
    hits = wait_for(lambda: all(h[2] for h in results(driver)[:6]) and results(driver)[:6],
                    "the first row's pictures")
    for hit_id, _, _, src in hits:
        if hit_id == IMAGE_URL_ITEM:
            assert src.startswith("data:image/jpeg;base64,"), (hit_id, src[:60])
        else:
            assert src.startswith(base + "/collections/" + COLLECTION + "/items/"), (hit_id, src)
    assert IMAGE_URL_ITEM in [h[0] for h in hits[:4]]
    screenshot(driver, "web_page.png")

    # More like this, from the second result: that item is excluded from its own results.
    second = hits[1][0]
    driver.find_elements(By.CSS_SELECTOR, "#results li button.more")[1].click()
    wait_for(lambda: results(driver) and query in [h[0] for h in results(driver)] and
             second not in [h[0] for h in results(driver)], "more like " + second)
    assert results(driver)[0][1]["source"] == "chelsea"

    # A category filter chip: only that category remains.
    chips = driver.find_elements(By.CSS_SELECTOR, "#chips button.chip[data-key=source]")
    values = [c.get_attribute("data-value") for c in chips]
    assert len(values) >= 2, values
    wanted = "coffee" if "coffee" in values else [v for v in values if v != "chelsea"][0]
    chips[values.index(wanted)].click()
    wait_for(lambda: results(driver) and all(h[1]["source"] == wanted for h in results(driver)),
             "only " + wanted + " results")
    chip = driver.find_element(By.CSS_SELECTOR, f"#chips button.chip[data-value={wanted}]")
    assert chip.get_attribute("aria-pressed") == "true"
    screenshot(driver, "web_page_filtered.png")

    # A text file: refused with a clear message, the page keeps working.
    text_file = os.path.join(work, "notes.txt")
    with open(text_file, "w") as f:
        f.write("not a photo\n")
    driver.find_element(By.ID, "file").send_keys(text_file)
    wait_for(lambda: message(driver)[1] and "is not a photo" in message(driver)[0],
             "the bad-file message")
    # A file that claims to be a JPEG but is not: the server's error, shown.
    fake = os.path.join(work, "broken.jpg")
    with open(fake, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 truncated")
    driver.find_element(By.ID, "file").send_keys(fake)
    wait_for(lambda: message(driver)[1] and "could not use that" in message(driver)[0],
             "the server's error message")
    screenshot(driver, "web_page_error.png")
