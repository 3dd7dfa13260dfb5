/* The review page's behaviour: plain JavaScript, no build step, no library.
 *
 * Why it fetches everything itself: the data endpoints need "Authorization: Bearer <key>" (the
 * moderate role) and an <img src> cannot send a header, so thumbnails are fetched with the key
 * and shown from blob: URLs. The key lives in sessionStorage: this tab only, gone when it closes.
 * Data is only ever put in the page as text (textContent / text nodes), never parsed as markup.
 *
 * Endpoints (routes/review.py, routes/videos.py):
 *   GET  /review/queue?limit&sort&path&min_score&max_score&status -> {items: [...]}
 *   GET  /videos/{id}/evidence -> {pairs: [{query_t, match_t, query_thumb, match_thumb}], ...}
 *   POST /videos/{id}/verdict {verdict, of?, note?} -> {video, changed, verdict}
 *   GET  /videos/{id} -> the record
 */
"use strict";

(() => {
  const ROOT = document.body.dataset.root || "";
  const KEY_STORE = "vdup.review.key";
  const QUEUE_LIMIT = 50;
  const MAX_PAIRS = 4; // frame pairs shown per item, spread over the matched span
  const FILTERS = ["path", "min_score", "max_score", "sort", "status"];

  const queue = document.getElementById("queue");
  const message = document.getElementById("message");
  const filters = document.getElementById("filters");
  const keyForm = document.getElementById("key-form");
  const keyInput = document.getElementById("api-key");

  let generation = 0; // each queue load; answers for an older one are dropped
  let objectUrls = [];
  let noteCounter = 0;

  class ApiError extends Error {
    constructor(status, detail, path) {
      super(`${status} ${detail}`);
      this.status = status;
      this.detail = detail;
      this.path = path;
    }
  }

  // -- calls -----------------------------------------------------------------------------------

  function storedKey() {
    return sessionStorage.getItem(KEY_STORE) || "";
  }

  /* A path of this app ("/videos/a"), with the root path put in front; anything that resolves
   * to another origin is refused, so the key is never sent elsewhere. */
  function apiUrl(path) {
    const prefixed = path.startsWith("/") && !(ROOT && path.startsWith(ROOT + "/"));
    const url = new URL(prefixed ? ROOT + path : path, window.location.href);
    if (url.origin !== window.location.origin) {
      throw new ApiError(0, `refusing a URL on another host: ${url.origin}`, path);
    }
    return url.href;
  }

  async function call(path, options = {}) {
    const headers = new Headers(options.headers || {});
    const key = storedKey();
    if (key) headers.set("Authorization", `Bearer ${key}`);
    let response;
    try {
      response = await fetch(apiUrl(path), { ...options, headers, cache: "no-store" });
    } catch (err) {
      if (err instanceof ApiError) throw err;
      throw new ApiError(0, `the server did not answer (${err.message})`, path);
    }
    if (!response.ok) {
      let detail = response.statusText || "error";
      try {
        const body = await response.json();
        if (body && typeof body.detail === "string") detail = body.detail;
      } catch (_) {
        /* not JSON: keep the status text */
      }
      throw new ApiError(response.status, detail, path);
    }
    return response;
  }

  async function getJson(path, options) {
    return (await call(path, options)).json();
  }

  function explain(err) {
    if (!(err instanceof ApiError)) return `Unexpected error: ${err.message || err}`;
    if (err.status === 401) {
      return storedKey()
        ? "The API key was refused (401). Enter a valid key with the moderate role."
        : "An API key is needed (401). Enter a key with the moderate role above.";
    }
    if (err.status === 403) {
      return "This key may not review (403): it needs the moderate role.";
    }
    if (err.status === 0) return `Could not reach the server: ${err.detail}.`;
    return `Error ${err.status} from ${err.path}: ${err.detail}`;
  }

  // -- small helpers ---------------------------------------------------------------------------

  /* An element with attributes and children; string children become text nodes. */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value !== null && value !== undefined) node.setAttribute(name, String(value));
    }
    node.append(...children.filter((c) => c !== null && c !== undefined));
    return node;
  }

  function seconds(t) {
    return typeof t === "number" ? `${t.toFixed(1)} s` : "?";
  }

  function span(seg) {
    return Array.isArray(seg) && seg.length === 2
      ? `${seg[0].toFixed(1)}–${seg[1].toFixed(1)} s`
      : "–";
  }

  function when(unixS) {
    if (typeof unixS !== "number") return "";
    return `${new Date(unixS * 1000).toISOString().slice(0, 19).replace("T", " ")} UTC`;
  }

  function showMessage(text, kind = "info") {
    message.textContent = text;
    message.dataset.kind = kind;
  }

  function revokeThumbs() {
    for (const url of objectUrls) URL.revokeObjectURL(url);
    objectUrls = [];
  }

  // -- filters ---------------------------------------------------------------------------------

  function filtersFromUrl() {
    const params = new URLSearchParams(window.location.search);
    for (const name of FILTERS) {
      if (params.has(name)) filters.elements[name].value = params.get(name);
    }
  }

  function currentFilters() {
    const params = new URLSearchParams();
    for (const name of FILTERS) {
      const value = filters.elements[name].value.trim();
      if (value) params.set(name, value);
    }
    return params;
  }

  // -- the queue -------------------------------------------------------------------------------

  async function loadQueue() {
    const gen = ++generation;
    revokeThumbs();
    queue.replaceChildren();
    queue.dataset.state = "loading";
    showMessage("Loading the queue…");
    const params = currentFilters();
    const shown = params.toString();
    window.history.replaceState(null, "", shown ? `?${shown}` : window.location.pathname);
    params.set("limit", String(QUEUE_LIMIT));
    let data;
    try {
      data = await getJson(`/review/queue?${params}`);
    } catch (err) {
      if (gen !== generation) return;
      queue.dataset.state = "error";
      showMessage(explain(err), "error");
      return;
    }
    if (gen !== generation) return;
    const items = Array.isArray(data.items) ? data.items : [];
    if (!items.length) {
      queue.dataset.state = "empty";
      showMessage("Nothing to review with these filters.");
      return;
    }
    showMessage(`${items.length} item${items.length === 1 ? "" : "s"}.`);
    for (const item of items) {
      const article = renderItem(item);
      queue.append(article);
      loadEvidence(article, item, gen);
      if (item.verdict) loadRecord(article, item.video_id, gen);
    }
    queue.dataset.state = "ready";
  }

  function renderItem(item) {
    const id = String(item.video_id);
    const noteId = `note-${++noteCounter}`;
    const titleId = `title-${noteCounter}`;
    const facts = el(
      "dl",
      { class: "facts" },
      el("dt", {}, "matched"),
      el("dd", { class: "matched-video" }, String(item.matched_video || "–")),
      el("dt", {}, "original"),
      el("dd", { class: "duplicate-for" }, String(item.duplicate_for || "–")),
      el("dt", {}, "score"),
      el("dd", { class: "score" }, typeof item.score === "number" ? item.score.toFixed(3) : "?"),
      el("dt", {}, "path"),
      el("dd", { class: "path" }, String(item.path || "–")),
      el("dt", {}, "checked"),
      el("dd", { class: "created-at" }, when(item.created_at)),
      el("dt", {}, "segments"),
      el(
        "dd",
        { class: "segments" },
        `this ${span(item.query_segment_s)} ↔ matched ${span(item.match_segment_s)}`,
      ),
    );
    const notDuplicate = el("button", { type: "button", class: "not-duplicate" }, "Not a duplicate");
    const duplicateOf = el("button", { type: "button", class: "duplicate-of" }, "Duplicate of…");
    const note = el("input", {
      id: noteId,
      class: "note",
      type: "text",
      maxlength: 500,
      placeholder: "why (optional)",
    });
    const article = el(
      "article",
      { class: "item", "data-video-id": id, "aria-labelledby": titleId },
      el("h2", { class: "item-title", id: titleId }, el("span", { class: "video-id" }, id)),
      facts,
      el(
        "div",
        { class: "pairs", "data-state": "loading" },
        el("p", { class: "muted" }, "Loading frames…"),
      ),
      el(
        "details",
        { class: "features" },
        el("summary", {}, "Evidence"),
        el("div", { class: "features-body" }),
      ),
      el(
        "div",
        { class: "outcome" },
        el("p", { class: "verdict", "data-verdict": "" }, "No verdict yet."),
        el("p", { class: "record" }),
      ),
      el(
        "div",
        { class: "actions" },
        el("label", { for: noteId }, "Note"),
        note,
        notDuplicate,
        duplicateOf,
        el("span", { class: "action-status", role: "status", "aria-live": "polite" }),
      ),
    );
    if (item.verdict) showVerdict(article, item.verdict);
    notDuplicate.addEventListener("click", () => {
      const body = { verdict: "not_duplicate" };
      if (note.value.trim()) body.note = note.value.trim();
      sendVerdict(article, id, body);
    });
    duplicateOf.addEventListener("click", () => {
      const of = window.prompt(`${id} is a duplicate of which video id?`, item.matched_video || "");
      if (of === null) return;
      if (!of.trim()) {
        setActionStatus(article, "Give the id of the video it copies.", "error");
        return;
      }
      const body = { verdict: "duplicate_of", of: of.trim() };
      if (note.value.trim()) body.note = note.value.trim();
      sendVerdict(article, id, body);
    });
    return article;
  }

  // -- evidence and thumbnails -----------------------------------------------------------------

  async function loadEvidence(article, item, gen) {
    const box = article.querySelector(".pairs");
    let evidence;
    try {
      evidence = await getJson(`/videos/${encodeURIComponent(item.video_id)}/evidence`);
    } catch (err) {
      if (gen !== generation) return;
      box.dataset.state = "error";
      box.replaceChildren(el("p", { class: "error" }, `No frames: ${explain(err)}`));
      return;
    }
    if (gen !== generation) return;
    renderFeatures(article, evidence);
    const pairs = spread(Array.isArray(evidence.pairs) ? evidence.pairs : [], MAX_PAIRS);
    if (!pairs.length) {
      box.dataset.state = "empty";
      box.replaceChildren(el("p", { class: "muted" }, "No frame pairs for this match."));
      return;
    }
    const rows = pairs.map((pair, i) =>
      el(
        "div",
        { class: "pair", "data-pair": i },
        frame("query", "this video", pair.query_thumb, pair.query_t),
        frame("match", "matched video", pair.match_thumb, pair.match_t),
      ),
    );
    box.replaceChildren(...rows);
    const images = [...box.querySelectorAll("img[data-src]")];
    await Promise.all(images.map((img) => loadThumb(img, gen)));
    if (gen === generation) box.dataset.state = "ready";
  }

  /* At most n of the items, evenly spaced from the first to the last. */
  function spread(items, n) {
    if (items.length <= n) return items;
    return Array.from({ length: n }, (_, i) => items[Math.round((i * (items.length - 1)) / (n - 1))]);
  }

  function frame(side, label, url, t) {
    const img = el("img", {
      class: `thumb thumb-${side}`,
      alt: `${label} at ${seconds(t)}`,
      "data-state": url ? "loading" : "missing",
      "data-src": url || null,
    });
    return el(
      "figure",
      { class: `frame frame-${side}` },
      img,
      el("figcaption", {}, `${label} · `, el("span", { class: "t" }, seconds(t))),
    );
  }

  async function loadThumb(img, gen) {
    try {
      const blob = await (await call(img.dataset.src)).blob();
      if (gen !== generation) return;
      const url = URL.createObjectURL(blob);
      objectUrls.push(url);
      await new Promise((resolve) => {
        img.addEventListener("load", resolve, { once: true });
        img.addEventListener("error", resolve, { once: true });
        img.src = url;
      });
      img.dataset.state = img.naturalWidth > 0 ? "loaded" : "error";
    } catch (err) {
      img.dataset.state = "error";
      img.alt = `${img.alt} (not loaded: ${explain(err)})`;
    }
  }

  function renderFeatures(article, evidence) {
    const body = article.querySelector(".features-body");
    const features = evidence.features && typeof evidence.features === "object" ? evidence.features : {};
    const rows = Object.entries(features).map(([name, value]) =>
      el(
        "tr",
        {},
        el("th", { scope: "row" }, name),
        el("td", {}, typeof value === "number" ? value.toFixed(3) : String(value)),
      ),
    );
    const parts = [];
    if (rows.length) {
      parts.push(
        el(
          "table",
          { class: "features-table" },
          el("caption", {}, "What the match rests on"),
          el("tbody", {}, ...rows),
        ),
      );
    }
    const history = Array.isArray(evidence.verdicts) ? evidence.verdicts : [];
    if (history.length) {
      parts.push(
        el("h3", {}, "Earlier verdicts"),
        el("ul", { class: "history" }, ...history.map((v) => el("li", {}, verdictText(v)))),
      );
    }
    body.replaceChildren(...(parts.length ? parts : [el("p", { class: "muted" }, "No details.")]));
  }

  // -- verdicts --------------------------------------------------------------------------------

  function verdictText(v) {
    const what = v.verdict === "duplicate_of" ? `duplicate of ${v.of}` : "not a duplicate";
    const by = [v.who ? `by ${v.who}` : "", v.at ? `at ${when(v.at)}` : ""].filter(Boolean);
    const note = v.note ? ` “${v.note}”` : "";
    return `${what}${by.length ? ` (${by.join(", ")})` : ""}${note}`;
  }

  function showVerdict(article, verdict) {
    const p = article.querySelector(".verdict");
    p.textContent = `Verdict: ${verdictText(verdict)}`;
    p.dataset.verdict = verdict.verdict || "";
    article.dataset.verdict = verdict.verdict || "";
  }

  function showRecord(article, video, changed) {
    const p = article.querySelector(".record");
    const state = video.is_duplicate
      ? `duplicate of ${video.duplicate_for}`
      : "not a duplicate";
    let text = `Record now: ${state}; root ${video.root_id}.`;
    if (Array.isArray(changed) && changed.length) text += ` Re-pointed: ${changed.join(", ")}.`;
    p.textContent = text;
    p.dataset.rootId = String(video.root_id);
    p.dataset.isDuplicate = String(Boolean(video.is_duplicate));
    p.dataset.duplicateFor = String(video.duplicate_for || "");
  }

  async function loadRecord(article, id, gen) {
    try {
      const video = await getJson(`/videos/${encodeURIComponent(id)}`);
      if (gen === generation) showRecord(article, video, []);
    } catch (err) {
      if (gen === generation) article.querySelector(".record").textContent = explain(err);
    }
  }

  function setActionStatus(article, text, kind = "info") {
    const status = article.querySelector(".action-status");
    status.textContent = text;
    status.dataset.kind = kind;
  }

  async function sendVerdict(article, id, body) {
    const buttons = article.querySelectorAll(".actions button");
    for (const b of buttons) b.disabled = true;
    setActionStatus(article, "Saving…");
    try {
      const answer = await getJson(`/videos/${encodeURIComponent(id)}/verdict`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      if (answer.verdict) showVerdict(article, answer.verdict);
      if (answer.video) showRecord(article, answer.video, answer.changed);
      setActionStatus(article, "Saved.", "ok");
    } catch (err) {
      let text = explain(err);
      if (err instanceof ApiError && err.status === 409) text = `Not saved, it conflicts: ${err.detail}`;
      if (err instanceof ApiError && err.status === 404) text = `Not saved: ${err.detail}`;
      setActionStatus(article, text, "error");
    } finally {
      for (const b of buttons) b.disabled = false;
    }
  }

  // -- wiring ----------------------------------------------------------------------------------

  keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = keyInput.value.trim();
    if (key) sessionStorage.setItem(KEY_STORE, key);
    else sessionStorage.removeItem(KEY_STORE);
    loadQueue();
  });

  document.getElementById("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORE);
    keyInput.value = "";
    generation++;
    revokeThumbs();
    queue.replaceChildren();
    queue.dataset.state = "idle";
    showMessage("The key is forgotten.");
  });

  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    loadQueue();
  });

  keyInput.value = storedKey();
  filtersFromUrl();
  loadQueue();
})();
