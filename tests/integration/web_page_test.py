"""The web page end to end in a real headless Chromium (Debian's chromium and
chromedriver, driven by Selenium): the real lookalike-server with the real
EfficientNet-Lite0 weights and a catalog of sample photos in a collection that
keeps 256 px thumbnails (one item also carries a small picture in its image_url
metadata, which the page prefers), then, as a shopper would: upload a catalog
photo and see that item first with its picture, loaded from the server's
thumbnail URL; "more like this"; a category filter chip; a text file and a
corrupt photo, each with a clear message. Then a second server with API
keys (a keys file made by tools/make_api_key.py): the page asks for a key,
refuses a wrong one with the server's message, searches with a read key and
shows the first result's thumbnail from a blob: URL (fetched with the key),
shows the server's message for a key without the right, and forgets the key.
Saves screenshots to $LOOKALIKE_SCREENSHOT_DIR (the build directory); with
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
import sys
import tempfile
import time
import urllib.error
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


def api(base, method, body, key=None):
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    request = urllib.request.Request(base + "/lookalike.v1.Lookalike/" + method,
                                     data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def catalog_items(photos, variants, image_url_item=None):
    """Upsert items: one per sample photo of the given variants."""
    items = []
    with open(os.path.join(photos, "metadata.csv")) as f:
        for row in csv.DictReader(f):
            if row["variant"] not in variants:
                continue
            path = os.path.join(photos, row["path"])
            with open(path, "rb") as image:
                data = base64.b64encode(image.read()).decode()
            metadata = {"source": row["source"], "variant": row["variant"]}
            if row["path"] == image_url_item:
                metadata["image_url"] = picture_url(path)
            items.append({"id": row["path"], "image": data, "metadata": metadata})
    return items


def start_server(work, extra_args=()):
    """The real server on free loopback ports: (process, base URL, log file)."""
    log_path = os.path.join(work, "server.log")
    log = open(log_path, "w")
    process = subprocess.Popen(
        [os.environ["LOOKALIKE_SERVER_BIN"], "--listen", "127.0.0.1:0", "--metrics-listen", "",
         "--http-listen", "127.0.0.1:0", "--data-dir", os.path.join(work, "data"), "--device", "cpu",
         "--model", "efficientnet_lite0=efficientnet_lite0:" + os.environ["LOOKALIKE_WEIGHTS"],
         *extra_args],
        stdout=log, stderr=subprocess.STDOUT)
    base = None
    deadline = time.time() + 90
    while time.time() < deadline and base is None:
        if process.poll() is not None:
            break
        found = re.search(r"web page on (http://127\.0\.0\.1:\d+)/", open(log_path).read())
        base = found.group(1) if found else None
        time.sleep(0.1)
    if base is None:
        stop_server(process, log)
        raise AssertionError("the server did not start:\n" + open(log_path).read())
    return process, base, log


def stop_server(process, log):
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def make_key(keys_file, role, name, collections=None):
    """A new API key appended to `keys_file` by tools/make_api_key.py."""
    tool = os.path.join(os.environ["LOOKALIKE_SOURCE_DIR"], "tools", "make_api_key.py")
    args = [sys.executable, tool, "--role", role, "--name", name, "--append", keys_file]
    if collections:
        args += ["--collections", collections]
    key = subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()
    assert re.fullmatch(r"lk_[0-9a-f]{64}", key), key
    return key


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
    process, base, log = start_server(work)
    try:
        api(base, "CreateCollection", {"name": COLLECTION, "thumbnailSize": THUMBNAIL_SIZE})
        reply = api(base, "Upsert", {"collection": COLLECTION,
                                     "items": catalog_items(photos, VARIANTS, IMAGE_URL_ITEM)})
        assert int(reply.get("failed", "0")) == 0, reply
        yield base, photos, work
    finally:
        stop_server(process, log)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def keyed_server():
    """A server with API keys: an admin key (fills the catalog), a read key,
    and a read key limited to another collection."""
    photos = os.environ["LOOKALIKE_PHOTOS"]
    work = tempfile.mkdtemp(prefix="lookalike_web_keys_")
    keys_file = os.path.join(work, "keys.yaml")
    keys = {"admin": make_key(keys_file, "admin", "ops"),
            "read": make_key(keys_file, "read", "web-shop"),
            "limited": make_key(keys_file, "read", "shoes-only", collections="shoes")}
    process, base, log = start_server(work, ["--api-keys", keys_file])
    try:
        api(base, "CreateCollection", {"name": COLLECTION, "thumbnailSize": THUMBNAIL_SIZE},
            key=keys["admin"])
        reply = api(base, "Upsert", {"collection": COLLECTION,
                                     "items": catalog_items(photos, ("original",))},
                    key=keys["admin"])
        assert int(reply.get("failed", "0")) == 0, reply
        yield base, photos, keys
    finally:
        stop_server(process, log)
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


def key_prompt(driver):
    """(form shown, its error text) of the API key prompt."""
    from selenium.webdriver.common.by import By
    form = driver.find_element(By.ID, "key-form")
    return form.is_displayed(), driver.find_element(By.ID, "key-error").text


def enter_key(driver, key):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    field = driver.find_element(By.ID, "key")
    field.clear()
    field.send_keys(key, Keys.ENTER)  # the keyboard submits the form


def test_api_key_prompt(keyed_server, browser):
    from selenium.webdriver.common.by import By
    base, photos, keys = keyed_server
    driver = browser
    driver.get(base + "/")
    # No key: the server answers 401 and the page asks for one.
    wait_for(lambda: key_prompt(driver)[0], "the API key prompt")
    assert driver.find_element(By.ID, "key-title").text == "This server needs an API key"
    assert "needs an API key" in message(driver)[0]
    # The field has a label, and has the focus.
    field = driver.find_element(By.ID, "key")
    label = driver.find_element(By.CSS_SELECTOR, "label[for=key]")
    assert label.text == "API key"
    assert driver.switch_to.active_element == field
    assert field.get_attribute("type") == "password"
    assert not driver.find_element(By.ID, "forget-key").is_displayed()

    # A wrong key: the prompt stays, with the server's message.
    enter_key(driver, "lk_" + "0" * 64)
    wait_for(lambda: "unknown API key" in key_prompt(driver)[1], "the wrong-key message")
    assert key_prompt(driver)[0]
    assert key_prompt(driver)[1].startswith("The server did not accept that key")
    screenshot(driver, "web_page_key_prompt.png")

    # The read key: the collections load and a search works.
    enter_key(driver, keys["read"])
    wait_for(lambda: "Choose, drop or take a photo" in message(driver)[0], "the collection to load")
    assert not key_prompt(driver)[0]
    assert driver.find_element(By.ID, "collection").get_attribute("value") == COLLECTION
    # Kept for this tab only.
    assert driver.execute_script("return sessionStorage.getItem('lookalike.apiKey')") == keys["read"]
    assert driver.execute_script(
        "return Object.keys(localStorage).filter((k) => localStorage.getItem(k).includes('lk_'))"
    ) == []
    query = "chelsea/original.jpg"
    driver.find_element(By.ID, "file").send_keys(os.path.join(photos, query))
    wait_for(lambda: results(driver) and results(driver)[0][0] == query, "results for " + query)
    # Its thumbnail, fetched with the key, shown from a blob: URL.
    first = wait_for(lambda: results(driver)[0][2] and results(driver)[0], "the first picture")
    assert first[3].startswith("blob:" + base + "/"), first[3]
    size = driver.execute_script(
        "const img = document.querySelector('#results li img.picture');"
        "return [img.naturalWidth, img.naturalHeight];")
    assert size[0] > 0 and max(size) == THUMBNAIL_SIZE, size
    # The same thumbnail without the key: refused.
    try:
        urllib.request.urlopen(base + "/collections/" + COLLECTION +
                               "/items/chelsea%2Foriginal.jpg/thumbnail", timeout=30)
        raise AssertionError("a thumbnail was served without a key")
    except urllib.error.HTTPError as e:
        assert e.code == 401, e.code
    # A new search replaces the results: the old pictures' blob: URLs are revoked.
    old_url = first[3]
    driver.find_elements(By.CSS_SELECTOR, "#results li button.more")[1].click()
    wait_for(lambda: results(driver) and results(driver)[0][3] != old_url and
             results(driver)[0][2], "more like the second result")
    revoked = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0]).then(() => done('still there'), () => done('revoked'));", old_url)
    assert revoked == "revoked", revoked
    screenshot(driver, "web_page_with_key.png")

    # Forget the key: asked again.
    driver.find_element(By.ID, "forget-key").click()
    wait_for(lambda: key_prompt(driver)[0], "the prompt after forgetting the key")
    assert driver.execute_script("return sessionStorage.getItem('lookalike.apiKey')") is None
    assert key_prompt(driver)[1] == ""
    assert results(driver) == []  # what the key showed is gone with it

    # A key without the right (limited to another collection, so it may not
    # list every collection): the server's 403 message.
    enter_key(driver, keys["limited"])
    wait_for(lambda: message(driver)[1] and "may not do that" in message(driver)[0],
             "the permission message")
    assert "ListCollections needs a key valid on every collection" in message(driver)[0]
    assert not key_prompt(driver)[0]
    assert driver.find_element(By.ID, "forget-key").is_displayed()
