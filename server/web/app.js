// The Lookalike page: pick a collection, give a photo (file, drag and drop,
// camera) or, when the collection's model has a text tower (CLIP), words;
// see similar items; filter by metadata, set a minimum score, and search
// again from any result ("more like this"). Talks to the server's
// JSON API (POST /lookalike.v1.Lookalike/<Method>, protobuf's JSON mapping).
//
// A server with API keys (docs/security.md) answers 401 without one: the page
// then asks for a key, sends it as "Authorization: Bearer <key>" with every
// call, and loads the server's thumbnails with fetch() (an <img src> cannot
// send a header) into blob: URLs, revoked when the results are replaced.
"use strict";

const K = 24;
const PICTURE_KEYS = ["image_url", "thumbnail_url"];
const $ = (id) => document.getElementById(id);
// The key lives in sessionStorage, not localStorage: it ends with the tab, so
// closing the tab forgets it and it is not left behind on a shared computer.
const KEY_STORAGE = "lookalike.apiKey";
const state = {
  collection: "",
  thumbnails: false, // the collection keeps thumbnails (CollectionInfo.thumbnailSize > 0)
  query: null,       // {image: base64}, {text: "..."} or {id: "..."}
  models: {},        // model name -> ModelInfo (ListModels)
  filters: {},       // key -> value (one value per key)
  facets: {},        // key -> Set of values seen in this collection's results
  minScore: 0,
  pictures: [],      // blob: URLs of the results' thumbnails (revoked with the results)
  blobs: new WeakMap(), // result <img> -> its thumbnail's bytes (for the preview)
  preview: "",       // blob: URL of the query preview, if it is one
  grid: 0,           // bumped whenever the results are replaced
};

function apiKey() {
  try { return sessionStorage.getItem(KEY_STORAGE) || ""; } catch (e) { return ""; }
}

function authHeaders() {
  const key = apiKey();
  return key ? {"Authorization": "Bearer " + key} : {};
}

class ApiError extends Error {
  constructor(code, message) { super(message); this.code = code; }
}

async function call(method, body) {
  let response;
  try {
    response = await fetch("/lookalike.v1.Lookalike/" + method, {
      method: "POST",
      headers: {"Content-Type": "application/json", ...authHeaders()},
      body: JSON.stringify(body || {}),
    });
  } catch (e) {
    throw new ApiError("unavailable", "cannot reach the server (" + e.message + ")");
  }
  const text = await response.text();
  let json = {};
  try { json = text ? JSON.parse(text) : {}; } catch (e) { json = {message: text}; }
  if (!response.ok) {
    throw new ApiError(json.code || "unknown", json.message || ("HTTP " + response.status));
  }
  return json;
}

function show(text, isError) {
  const m = $("message");
  m.textContent = text;
  m.classList.toggle("error", !!isError);
  m.setAttribute("role", isError ? "alert" : "status");
}

function explain(error) {
  if (error.code === "unavailable") return "The server is not reachable: " + error.message;
  if (error.code === "permission_denied") return "This API key may not do that: " + error.message;
  if (error.code === "invalid_argument") return "The server could not use that: " + error.message;
  if (error.code === "not_found") return "Not found: " + error.message;
  if (error.code === "failed_precondition") return "This search is not possible here: " + error.message;
  if (error.code === "resource_exhausted") return "The server is busy or the photo is too large: " + error.message;
  return "Server error (" + error.code + "): " + error.message;
}

// A failed call: the key prompt when the server wants a key (none sent, or
// one it does not know), else the error.
function fail(error) {
  if (error.code === "unauthenticated") {
    askForKey(error.message);
  } else {
    show(explain(error), true);
  }
}

function askForKey(serverMessage) {
  $("key-form").hidden = false;
  $("forget-key").hidden = !apiKey();
  // A key was sent and refused: say so, in the server's words.
  $("key-error").textContent = apiKey()
      ? "The server did not accept that key: " + serverMessage : "";
  show("This server needs an API key: enter it above to search.", true);
  $("key").focus();
}

function useKey(key) {
  key = key.trim();
  if (!key) {
    $("key-error").textContent = "Enter the API key you were given (it starts with lk_).";
    $("key").focus();
    return;
  }
  sessionStorage.setItem(KEY_STORAGE, key);
  $("key").value = "";
  $("key-form").hidden = true;
  $("key-error").textContent = "";
  $("forget-key").hidden = false;
  loadCollections();
}

// Drops the key and everything it showed; the server asks for a key again.
function forgetKey() {
  sessionStorage.removeItem(KEY_STORAGE);
  $("forget-key").hidden = true;
  clearResults();
  if (state.preview) URL.revokeObjectURL(state.preview);
  state.preview = "";
  $("query-preview").hidden = true;
  $("collection").textContent = "";
  $("collection-info").textContent = "";
  Object.assign(state, {collection: "", thumbnails: false, query: null, filters: {}, facets: {}});
  renderChips();
  show("Key forgotten.");
  loadCollections();
}

async function loadCollections() {
  const select = $("collection");
  let list;
  try {
    for (const m of (await call("ListModels")).models || []) state.models[m.name] = m;
    list = (await call("ListCollections")).collections || [];
  } catch (e) {
    fail(e);
    return;
  }
  select.textContent = "";
  if (list.length === 0) {
    show("This server has no collections yet: create one and index photos " +
         "(lookalike create NAME; lookalike index NAME PHOTO_DIR).", true);
    return;
  }
  for (const c of list) {
    const option = document.createElement("option");
    option.value = c.name;
    option.textContent = c.name + " (" + Number(c.count || 0) + " items)";
    select.appendChild(option);
  }
  const remembered = localStorage.getItem("lookalike.collection");
  if (remembered && list.some((c) => c.name === remembered)) select.value = remembered;
  await chooseCollection(select.value);
}

async function chooseCollection(name) {
  state.collection = name;
  state.thumbnails = false;
  state.query = null;
  state.filters = {};
  state.facets = {};
  localStorage.setItem("lookalike.collection", name);
  clearResults();
  renderChips();
  try {
    const info = await call("DescribeCollection", {name});
    const count = Number(info.count || 0);
    state.thumbnails = Number(info.thumbnailSize || 0) > 0;
    $("collection-info").textContent = count + " items, model " + (info.model || "?") +
        ", metric " + (info.metric || "COSINE").toLowerCase();
    const model = state.models[info.model];
    $("text-form").hidden = !(model && model.hasText);
    if (count === 0) {
      show("Collection " + name + " is empty: index photos into it first " +
           "(lookalike index " + name + " PHOTO_DIR).", true);
    } else if (info.model === "none") {
      show("Collection " + name + " stores vectors only: it cannot be searched with a photo.", true);
    } else {
      show("Choose, drop or take a photo to find similar items.");
    }
  } catch (e) {
    fail(e);
  }
}

function readAsBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ""));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function usePhoto(file) {
  if (!file) return;
  if (!file.type.startsWith("image/")) {
    show("\u201c" + file.name + "\u201d is not a photo (" + (file.type || "unknown type") +
         "): choose a JPEG, PNG, WebP, GIF, BMP or TIFF image.", true);
    return;
  }
  setPreview(URL.createObjectURL(file), "Your photo: " + file.name, true);
  state.query = {image: await readAsBase64(file)};
  await search();
}

async function useText(text) {
  text = text.trim();
  if (!text) {
    show("Type a few words describing what you are looking for.", true);
    return;
  }
  $("query-preview").hidden = true;
  state.query = {text};
  await search();
}

async function search() {
  if (!state.collection || !state.query) return;
  const request = {
    collection: state.collection,
    queries: [state.query],
    k: K,
    includeMetadata: true,
    filter: Object.entries(state.filters).map(([key, value]) => ({key, values: [value]})),
  };
  if (state.minScore > 0) request.minScore = state.minScore;
  show("Searching\u2026");
  try {
    const response = await call("Search", request);
    const hits = ((response.results || [])[0] || {}).hits || [];
    learnFacets(hits);
    renderChips();
    renderResults(hits);
    const filters = Object.entries(state.filters).map(([k, v]) => k + "=" + v).join(", ");
    show(hits.length === 0
        ? "No similar items" + (filters ? " with " + filters : "") +
          (state.minScore > 0 ? " scoring at least " + state.minScore.toFixed(2) : "") + "."
        : hits.length + " similar items" + (filters ? " with " + filters : "") + ".");
  } catch (e) {
    clearResults();
    fail(e);
  }
}

// Filter chips come from the metadata of the results seen so far: keys with
// a few distinct values (a category, a brand), not per-item keys (an id, a URL).
function learnFacets(hits) {
  for (const hit of hits) {
    for (const [key, value] of Object.entries(hit.metadata || {})) {
      if (PICTURE_KEYS.includes(key) || value.length > 40) continue;
      (state.facets[key] = state.facets[key] || new Set()).add(value);
    }
  }
}

function renderChips() {
  const box = $("chips");
  box.textContent = "";
  for (const key of Object.keys(state.facets).sort()) {
    const values = [...state.facets[key]].sort();
    if (values.length < 2 && !(key in state.filters)) continue;
    if (values.length > 12) continue;
    const label = document.createElement("span");
    label.className = "key";
    label.textContent = key + ":";
    box.appendChild(label);
    for (const value of values) {
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = "chip";
      chip.textContent = value;
      chip.dataset.key = key;
      chip.dataset.value = value;
      chip.setAttribute("aria-pressed", String(state.filters[key] === value));
      chip.addEventListener("click", () => {
        if (state.filters[key] === value) delete state.filters[key];
        else state.filters[key] = value;
        search();
      });
      box.appendChild(chip);
    }
  }
}

// The item's own picture (metadata image_url / thumbnail_url) first, else the
// thumbnail the server keeps when the collection has them, else none.
function pictureUrl(hit) {
  const metadata = hit.metadata || {};
  for (const key of PICTURE_KEYS) {
    const url = metadata[key];
    if (url && /^(https?:|data:image\/|\/)/.test(url)) return url;
  }
  if (state.thumbnails) {
    return "/collections/" + encodeURIComponent(state.collection) + "/items/" +
        encodeURIComponent(hit.id) + "/thumbnail";
  }
  return "";
}

// The query preview; `owned` blob: URLs are revoked when it changes.
function setPreview(src, alt, owned) {
  if (state.preview) URL.revokeObjectURL(state.preview);
  state.preview = owned ? src : "";
  const preview = $("query-preview");
  preview.src = src;
  preview.alt = alt;
  preview.hidden = false;
}

// Empties the results and frees their pictures' blob: URLs; thumbnail loads
// still in flight see the new `grid` and drop what they fetched.
function clearResults() {
  state.grid += 1;
  if (thumbnailLoader) thumbnailLoader.disconnect();
  for (const url of state.pictures) URL.revokeObjectURL(url);
  state.pictures = [];
  $("results").textContent = "";
}

// The server's own thumbnail route, which needs the key when there is one.
function isThumbnailRoute(url) {
  return url.startsWith("/collections/");
}

function showPlaceholder(picture) {
  const placeholder = document.createElement("div");
  placeholder.className = "picture placeholder";
  placeholder.textContent = "no picture";
  picture.replaceWith(placeholder);
}

// With a key, <img src> cannot authenticate: fetch the thumbnail with the
// header and show it from a blob: URL, when the picture scrolls into view
// (as loading="lazy" would).
const thumbnailLoader = "IntersectionObserver" in window
    ? new IntersectionObserver((entries, observer) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        observer.unobserve(entry.target);
        loadThumbnail(entry.target);
      }
    }, {rootMargin: "200px"})
    : null;

async function loadThumbnail(picture) {
  const grid = state.grid;
  let blob;
  try {
    const response = await fetch(picture.dataset.thumbnail, {headers: authHeaders()});
    if (!response.ok) throw new Error("HTTP " + response.status);
    blob = await response.blob();
  } catch (e) {
    if (grid === state.grid) showPlaceholder(picture);
    return;
  }
  if (grid !== state.grid) return;  // the results were replaced meanwhile
  const url = URL.createObjectURL(blob);
  state.pictures.push(url);
  state.blobs.set(picture, blob);
  picture.src = url;
}

function renderResults(hits) {
  clearResults();
  const list = $("results");
  for (const hit of hits) {
    const item = document.createElement("li");
    item.className = "result";
    item.dataset.id = hit.id;
    const url = pictureUrl(hit);
    let picture;
    if (url) {
      picture = document.createElement("img");
      picture.alt = hit.id;
      if (apiKey() && isThumbnailRoute(url)) {
        picture.dataset.thumbnail = url;
        if (thumbnailLoader) thumbnailLoader.observe(picture);
        else loadThumbnail(picture);
      } else {
        picture.src = url;
        picture.loading = "lazy";
      }
      // An item without a picture (e.g. written as a vector): the placeholder.
      picture.addEventListener("error", () => showPlaceholder(picture), {once: true});
    } else {
      picture = document.createElement("div");
      picture.classList.add("placeholder");
      picture.textContent = "no picture";
    }
    picture.classList.add("picture");
    item.appendChild(picture);
    const body = document.createElement("div");
    body.className = "body";
    const id = document.createElement("div");
    id.className = "id";
    id.textContent = hit.id;
    const score = document.createElement("div");
    score.className = "score";
    score.textContent = "score " + Number(hit.score || 0).toFixed(3);
    body.append(id, score);
    const entries = Object.entries(hit.metadata || {}).filter(([k]) => !PICTURE_KEYS.includes(k));
    if (entries.length) {
      const dl = document.createElement("dl");
      for (const [k, v] of entries.sort()) {
        const dt = document.createElement("dt");
        dt.textContent = k;
        const dd = document.createElement("dd");
        dd.textContent = v;
        dd.dataset.key = k;
        dl.append(dt, dd);
      }
      body.appendChild(dl);
    }
    const more = document.createElement("button");
    more.type = "button";
    more.className = "more";
    more.textContent = "More like this";
    more.setAttribute("aria-label", "More like " + hit.id);
    more.addEventListener("click", () => {
      state.query = {id: hit.id};
      // A fetched thumbnail's blob: URL is revoked with these results: the
      // preview gets its own URL for the same bytes.
      const blob = state.blobs.get(picture);
      if (blob) {
        setPreview(URL.createObjectURL(blob), "Searching like " + hit.id, true);
      } else if (url && !picture.dataset.thumbnail) {
        setPreview(url, "Searching like " + hit.id, false);
      }
      search();
    });
    body.appendChild(more);
    item.appendChild(body);
    list.appendChild(item);
  }
}

function setUp() {
  $("collection").addEventListener("change", (e) => chooseCollection(e.target.value));
  for (const id of ["file", "camera"]) {
    $(id).addEventListener("change", (e) => {
      usePhoto(e.target.files[0]);
      e.target.value = "";  // the same file again is a new choice
    });
  }
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    usePhoto(e.dataTransfer.files[0]);
  });
  $("text-form").addEventListener("submit", (e) => {
    e.preventDefault();
    useText($("text").value);
  });
  const slider = $("min-score");
  slider.addEventListener("input", () => {
    state.minScore = Number(slider.value);
    $("min-score-value").textContent = state.minScore > 0 ? state.minScore.toFixed(2) : "off";
  });
  slider.addEventListener("change", search);
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    useKey($("key").value);
  });
  $("forget-key").addEventListener("click", forgetKey);
  $("forget-key").hidden = !apiKey();
  loadCollections();
}

setUp();
