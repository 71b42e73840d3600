/* boxloop labeling app: a keyboard-first box editor over the boxloop labeling API.
 *
 * One plain script (ES2020, no modules, no build step, no CDN) so the same three files are served
 * by the local labeling server and from S3/CloudFront. Boxes live in image pixels: the SVG overlay
 * has viewBox "0 0 W H" and sits exactly over the <img>; zoom and pan only change the size and
 * position of the stage holding both, so no coordinate ever depends on the zoom.
 *
 * API contract: docs/labeling-api.md (base path and auth mode from /config.json).
 */
(function () {
  "use strict";

  // ---------------------------------------------------------------- constants and small helpers
  const COLORS = ["#3b82f6", "#22c55e", "#ef4444", "#a855f7", "#14b8a6", "#eab308", "#ec4899",
    "#f97316", "#84cc16", "#06b6d4"];
  const MIN_BOX_PX = 2;         // a drag shorter than this (image px) is a click, not a box
  const HANDLE_PX = 9;          // resize handle size on screen
  const UNDO_LIMIT = 200;
  const IDLE_MS = 60000;        // no mouse or key for this long: the time after it is not work
  const SVG_NS = "http://www.w3.org/2000/svg";
  const STORE = "boxloop.";     // localStorage key prefix

  const $ = (id) => document.getElementById(id);
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  const round1 = (v) => Math.round(v * 10) / 10;
  const colorOf = (classId) => COLORS[((classId % COLORS.length) + COLORS.length) % COLORS.length];

  function svgEl(tag, attrs) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const k in attrs) el.setAttribute(k, attrs[k]);
    return el;
  }

  function randomId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function storeGet(key) {
    try { return JSON.parse(localStorage.getItem(STORE + key)); } catch (e) { return null; }
  }
  function storeSet(key, value) {
    try {
      if (value === null) localStorage.removeItem(STORE + key);
      else localStorage.setItem(STORE + key, JSON.stringify(value));
    } catch (e) { /* private mode or full: drafts are a comfort, not a requirement */ }
  }

  // ---------------------------------------------------------------- page state
  const app = {
    config: { api: "/api/v1", auth: "token", cognito: null },
    token: null,
    worker: null,           // {id, name}
    session: null,          // GET /session body
    classes: [],            // [{id, name}]
    mode: "label",          // "label" | "review"
    counts: null,
    // Editor
    task: null,             // the Task (label mode) or review item shown
    target: null,           // {kind: "task"|"review", id, lease_id}
    boxes: [],              // editor boxes, see makeBox
    preCount: 0,            // pre-annotations the image arrived with
    priorSeconds: 0,        // time spent on an earlier answer of the image being corrected
    priorNoObjects: false,  // that earlier answer was "no objects"
    selected: null,         // id of the selected box
    currentClass: 0,        // class id new boxes get
    undo: [], redo: [],
    shownMs: 0, shownSince: null, // working time on this image, and when the last stretch began
    busy: false,
    // Navigation: tasks this worker answered in this page, to go back to
    history: [], historyPos: -1, pending: null,
    // View
    scale: 1, panX: 0, panY: 0, fitScale: 1,
    spaceDown: false, drag: null, hideBoxes: false,
    // Review
    review: { items: [], total: 0, offset: 0 },
  };
  let nextBoxId = 1;

  // ---------------------------------------------------------------- messages
  function showError(message) {
    $("error-text").textContent = message;
    $("error").hidden = false;
  }
  function clearError() { $("error").hidden = true; }
  let noticeTimer = null;
  function notice(message) {
    $("notice").textContent = message;
    $("notice").hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { $("notice").hidden = true; }, 2500);
  }
  function showView(id, message) {
    for (const v of ["editor", "gallery", "message-view"]) $(v).hidden = v !== id;
    if (message !== undefined) $("message-text").textContent = message;
  }

  // ---------------------------------------------------------------- API
  class ApiError extends Error {
    constructor(status, code, message, field) {
      super(message);
      this.status = status; this.code = code; this.field = field;
    }
  }

  async function api(method, path, body) {
    const headers = { "Accept": "application/json" };
    if (app.token) headers["Authorization"] = "Bearer " + app.token;
    if (app.worker && app.config.auth === "token") headers["X-Boxloop-Worker"] = app.worker.id;
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(app.config.api + path, init);
    } catch (e) {
      throw new ApiError(0, "network", "The labeling server does not answer (" + e.message +
        "). If the run was stopped, resume it and reload this page; your submitted labels are kept.");
    }
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (response.status === 401 && app.config.auth === "cognito") {
      signOutAndIn(); // the sign-in expired: Cognito's page, then back here
    }
    if (!response.ok) {
      const err = (data && data.error) || {};
      const message = err.message || ("The server answered HTTP " + response.status + " to " +
        method + " " + path + ".");
      throw new ApiError(response.status, err.code || "http_" + response.status, message,
        err.field || null);
    }
    return data;
  }

  function reportError(e) {
    if (e instanceof ApiError) {
      showError(e.field ? e.message + " (" + e.field + ")" : e.message);
    } else {
      showError("The page hit an error: " + (e && e.message ? e.message : e));
      console.error(e);
    }
  }

  // ---------------------------------------------------------------- start-up
  function readToken() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ""));
    const fromHash = params.get("token") || params.get("id_token") || params.get("access_token");
    if (fromHash) {
      try { sessionStorage.setItem(STORE + "token", fromHash); } catch (e) { /* ignore */ }
      return fromHash;
    }
    try { return sessionStorage.getItem(STORE + "token"); } catch (e) { return null; }
  }

  // ---------------------------------------------------------------- Cognito sign-in (AWS)
  // Authorization code with PKCE on Cognito's hosted pages (config.json's "cognito" block:
  // domain, client_id, redirect_uri). The ID token is the bearer: it carries the email that
  // names the worker. Kept in sessionStorage until it expires; then a fresh sign-in.

  function base64url(bytes) {
    let text = "";
    for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function cognitoConfig() {
    const c = app.config.cognito || {};
    if (!c.domain || !c.client_id) {
      throw new Error("config.json names no Cognito domain and client_id; redeploy the stack.");
    }
    return { domain: c.domain.replace(/\/$/, ""), clientId: c.client_id,
      redirectUri: c.redirect_uri || location.origin + location.pathname };
  }

  async function cognitoToken() {
    const c = cognitoConfig();
    const query = new URLSearchParams(location.search);
    if (query.get("error")) {
      throw new Error("Cognito refused the sign-in: " + (query.get("error_description") ||
        query.get("error")));
    }
    if (query.get("code")) {
      const verifier = sessionStorage.getItem(STORE + "pkce");
      if (!verifier || query.get("state") !== sessionStorage.getItem(STORE + "state")) {
        throw new Error("This sign-in link is not from this browser tab; reload to sign in.");
      }
      const response = await fetch(c.domain + "/oauth2/token", {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: "authorization_code", client_id: c.clientId,
          code: query.get("code"), redirect_uri: c.redirectUri, code_verifier: verifier }),
      });
      const tokens = await response.json().catch(() => ({}));
      if (!response.ok || !tokens.id_token) {
        throw new Error("Cognito did not give a token (" + (tokens.error || response.status) +
          "); reload to sign in again.");
      }
      sessionStorage.removeItem(STORE + "pkce");
      sessionStorage.setItem(STORE + "token", tokens.id_token);
      sessionStorage.setItem(STORE + "token_exp",
        String(Date.now() + (Number(tokens.expires_in) || 3600) * 1000 - 60000));
      history.replaceState(null, "", location.pathname); // the code is single-use
      return tokens.id_token;
    }
    const token = sessionStorage.getItem(STORE + "token");
    if (token && Number(sessionStorage.getItem(STORE + "token_exp")) > Date.now()) return token;
    await cognitoSignIn(c);
    return null;
  }

  async function cognitoSignIn(c) {
    const verifier = randomId() + randomId();
    const state = randomId();
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
    sessionStorage.setItem(STORE + "pkce", verifier);
    sessionStorage.setItem(STORE + "state", state);
    location.assign(c.domain + "/oauth2/authorize?" + new URLSearchParams({
      response_type: "code", client_id: c.clientId, redirect_uri: c.redirectUri,
      scope: "openid email", state, code_challenge: base64url(digest),
      code_challenge_method: "S256" }));
  }

  function signOutAndIn() {
    sessionStorage.removeItem(STORE + "token");
    sessionStorage.removeItem(STORE + "token_exp");
    try { cognitoSignIn(cognitoConfig()); } catch (e) { reportError(e); }
  }

  async function loadConfig() {
    try {
      const response = await fetch("/config.json", { cache: "no-store" });
      if (response.ok) Object.assign(app.config, await response.json());
    } catch (e) { /* defaults: local server layout */ }
  }

  function askName() {
    return new Promise((resolve) => {
      const dialog = $("name-dialog");
      const input = $("name-input");
      input.value = (app.worker && app.worker.name) || "";
      $("name-form").onsubmit = (ev) => {
        ev.preventDefault();
        const name = input.value.trim();
        if (!name) return;
        dialog.close();
        resolve(name);
      };
      dialog.addEventListener("cancel", (ev) => ev.preventDefault());
      dialog.showModal();
      input.focus();
    });
  }

  async function start() {
    bindUi();
    await loadConfig();
    if (app.config.auth === "cognito") {
      try {
        app.token = await cognitoToken();
      } catch (e) {
        reportError(e);
        showView("message-view", "Signing in did not work; see the message above. Reload to " +
          "try again.");
        return;
      }
      if (!app.token) return; // on the way to Cognito's sign-in page
    } else {
      app.token = readToken();
    }
    if (!app.token && app.config.auth === "token") {
      showView("message-view", "This page needs the link the labeling run printed " +
        "(it ends in #token=...). Open that link; the token proves you may label this run.");
      return;
    }
    app.worker = storeGet("worker");
    if (!app.worker || !app.worker.id) app.worker = { id: randomId(), name: null };
    storeSet("worker", app.worker);
    try {
      app.session = await api("GET", "/session");
      applySession(app.session);
      if (!app.session.worker || !app.session.worker.name) {
        const name = app.worker.name || await askName();
        const answer = await api("POST", "/worker", { name });
        app.worker.name = (answer.worker && answer.worker.name) || name;
        storeSet("worker", app.worker);
      } else {
        app.worker.name = app.session.worker.name;
        storeSet("worker", app.worker);
      }
      $("worker-label").textContent = app.worker.name;
      if (app.mode === "review") await openGallery(true);
      else await loadNext();
    } catch (e) {
      reportError(e);
      showView("message-view", "The labeling session could not start; see the message above.");
    }
  }

  /** Clicking one's name changes it (a shared browser, a typo); later answers carry the new one. */
  async function renameWorker() {
    if (!app.worker || !app.session) return;
    const name = await askName();
    try {
      const answer = await api("POST", "/worker", { name });
      app.worker.name = (answer.worker && answer.worker.name) || name;
      storeSet("worker", app.worker);
      $("worker-label").textContent = app.worker.name;
    } catch (e) {
      reportError(e);
    }
  }

  function applySession(session) {
    app.mode = session.mode === "review" ? "review" : "label";
    const job = session.job || {};
    const classes = (job.classes || []).slice().sort((a, b) => a.id - b.id);
    if (classes.length) {
      if (!classes.some((c) => c.id === app.currentClass)) app.currentClass = classes[0].id;
      app.classes = classes;
    }
    $("job-title").textContent = job.title || job.name || "boxloop labeling";
    document.title = ($("job-title").textContent) + " - boxloop";
    if (job.instructions) {
      $("job-title").title = job.instructions;
      $("help-instructions").textContent = job.instructions;
      $("help-instructions").hidden = false;
    }
    updateCounts(job.counts);
    $("review-controls").hidden = app.mode !== "review";
    $("btn-back").hidden = app.mode !== "review";
    $("btn-prev").hidden = app.mode === "review";
    $("btn-submit").firstChild.textContent = app.mode === "review" ? "Save correction " :
      "Submit & next ";
    renderClassList();
  }

  function updateCounts(counts) {
    if (!counts) return;
    app.counts = counts;
    const parts = ["done " + counts.done, "left " + counts.left];
    if (counts.total !== undefined) parts.push("of " + counts.total);
    if (counts.leased) parts.push("(" + counts.leased + " open in browsers)");
    $("progress").textContent = parts.join(" \u00b7 ");
  }

  function className(classId) {
    const c = app.classes.find((k) => k.id === classId);
    return c ? c.name : "class " + classId;
  }

  // ---------------------------------------------------------------- label mode: tasks
  async function loadNext() {
    if (app.historyPos >= 0 && app.historyPos < app.history.length - 1) {
      app.historyPos += 1;
      return openTask(app.history[app.historyPos], true);
    }
    app.historyPos = app.history.length;
    if (app.pending) { const task = app.pending; app.pending = null; return showTask(task); }
    const answer = await api("POST", "/tasks/next", {});
    if (answer.counts) updateCounts(answer.counts);
    if (!answer.task) { waitForWork(answer.reason); return; }
    showTask(answer.task);
  }

  const WAITING = {
    "all-leased": "Every image left is open in another browser right now. This page looks " +
      "again every few seconds; an image comes back when its labeller leaves it.",
    "no-job": "No batch to label right now: the loop is training or choosing the next " +
      "images. Keep this page open; the next batch appears here by itself.",
    "done": "All images of this batch are labelled, thank you! Keep this page open for the " +
      "next batch, or close it.",
  };
  let pollTimer = null;

  /** No task for this worker now: say why, and look again every few seconds. */
  function waitForWork(reason) {
    app.task = null; app.target = null; app.shownSince = null;
    let text = WAITING[reason] || WAITING.done;
    const perImage = app.session && app.session.job && app.session.job.workers_per_object;
    if (reason === "done" && app.counts && app.counts.left > 0) {
      // "done" is from this worker's side: with several workers per image, others must answer.
      text = "You have answered every image you can in this batch. " + app.counts.left +
        " image(s) still need answers from other people (each image needs " + (perImage || 1) +
        " different labellers). Keep this page open for the next batch.";
    }
    showView("message-view", text);
    clearTimeout(pollTimer);
    pollTimer = setTimeout(async () => {
      try {
        const session = await api("GET", "/session");
        app.session = session;
        applySession(session);
        if (session.job) { await loadNext(); return; }
        waitForWork("no-job");
      } catch (e) {
        reportError(e);
        waitForWork(reason);
      }
    }, 4000);
  }

  async function openTask(taskId, fromHistory) {
    const task = await api("GET", "/tasks/" + encodeURIComponent(taskId));
    showTask(task.task || task, fromHistory);
  }

  function showTask(task) {
    app.task = task;
    app.target = { kind: "task", id: task.task_id, lease_id: task.lease_id || null };
    const pre = (task.preannotations || []).map((p) => makeBox(p, "model", true));
    app.preCount = pre.length;
    let boxes = pre;
    app.priorSeconds = 0;
    app.priorNoObjects = false;
    if (task.answer) {
      // Reopened to correct: the new answer replaces the old one, so it carries the old time.
      boxes = (task.answer.boxes || []).map((b) => makeBox(b, b.origin || "human", false));
      app.priorSeconds = Number((task.answer.effort || {}).seconds) || 0;
      app.priorNoObjects = !!task.answer.no_objects;
    }
    const draft = storeGet("draft." + task.task_id);
    if (draft && !task.answer && Array.isArray(draft.boxes)) {
      boxes = draft.boxes.map((b) => makeBox(b, b.origin, b.pending));
      notice("Restored your unsaved boxes for this image.");
    }
    const info = [task.task_id, task.width + "\u00d7" + task.height + " px"];
    if (task.role) info.push(task.role);
    if (task.answer) info.push("your earlier answer");
    $("task-info").textContent = info.join(" \u00b7 ");
    loadImage(task.image_url, task.width, task.height, boxes);
    selectNextSuggestion();
  }

  function makeBox(b, origin, pending) {
    return {
      id: nextBoxId++,
      class_id: Number(b.class_id),
      left: Number(b.left), top: Number(b.top), width: Number(b.width), height: Number(b.height),
      origin: origin === "model" ? "model" : "human",
      pending: origin === "model" && !!pending,
      edited: !!b.edited,
      score: b.score === undefined || b.score === null ? null : Number(b.score),
    };
  }

  function loadImage(url, width, height, boxes) {
    showView("editor");
    clearError();
    app.boxes = boxes;
    app.selected = null;
    app.undo = []; app.redo = [];
    app.shownMs = 0;
    app.shownSince = document.visibilityState === "visible" ? performance.now() : null;
    app.imageW = width; app.imageH = height;
    const img = $("image");
    img.onerror = () => showError("The image of " + (app.target && app.target.id) +
      " did not load (its signed link may have expired): reload the page.");
    img.src = url;
    $("overlay").setAttribute("viewBox", "0 0 " + width + " " + height);
    fitView();
    render();
    $("viewport").focus({ preventScroll: true });
  }

  function visibleSeconds() {
    let ms = app.shownMs;
    if (app.shownSince !== null) ms += Math.min(performance.now() - app.shownSince, IDLE_MS);
    return app.priorSeconds + ms / 1000;
  }

  function effort() {
    const final = app.boxes.filter((b) => !b.pending);
    const model = final.filter((b) => b.origin === "model");
    return {
      seconds: round1(visibleSeconds()),
      boxes_drawn: final.filter((b) => b.origin === "human").length,
      model_boxes_accepted: model.filter((b) => !b.edited).length,
      model_boxes_moved: model.filter((b) => b.edited).length,
      model_boxes_deleted: Math.max(0, app.preCount - model.length),
    };
  }

  function answerBoxes() {
    return app.boxes.filter((b) => !b.pending).map((b) => ({
      class_id: b.class_id,
      left: round1(b.left), top: round1(b.top), width: round1(b.width), height: round1(b.height),
      origin: b.origin, edited: b.origin === "model" ? b.edited : false,
    }));
  }

  async function submit(noObjects) {
    if (app.busy || !app.target) return;
    const pending = app.boxes.filter((b) => b.pending).length;
    const boxes = answerBoxes();
    if (!noObjects && !boxes.length && !pending && app.priorNoObjects) noObjects = true;
    if (pending && !(noObjects && !boxes.length)) {
      showError(pending + " model suggestion(s) are still dashed: keep (Y) or drop (Del) each, " +
        "or press A to accept them all or R to drop them all, then submit.");
      return;
    }
    if (noObjects && pending) {
      // "No objects" over suggestions only: every suggestion was wrong (counted as deleted).
      pushUndo();
      app.boxes = app.boxes.filter((b) => !b.pending);
      render();
    }
    if (noObjects && boxes.length) {
      showError("This image has " + boxes.length + " box(es): delete them before answering " +
        "\"no objects\", or press Enter to submit the boxes.");
      return;
    }
    if (!noObjects && !boxes.length) {
      showError("No box drawn. Draw the objects, or press E if this image has none.");
      return;
    }
    app.busy = true;
    try {
      if (app.target.kind === "review") {
        await api("POST", "/review/items/" + encodeURIComponent(app.target.id) + "/correct",
          { boxes, no_objects: !!noObjects });
        notice("Correction saved.");
        await openGallery(true);
        return;
      }
      const body = { lease_id: app.target.lease_id, boxes, no_objects: !!noObjects,
        effort: effort() };
      const answer = await api("POST", "/tasks/" + encodeURIComponent(app.target.id) +
        "/submit", body);
      if (answer.counts) updateCounts(answer.counts);
      storeSet("draft." + app.target.id, null);
      if (app.historyPos >= app.history.length) app.history.push(app.target.id);
      app.task = null;
      await loadNext();
    } catch (e) {
      reportError(e);
      if (e instanceof ApiError && (e.code === "lease_expired" || e.code === "job_closed")) {
        app.pending = null;
        setTimeout(() => loadNext().catch(reportError), 1500);
      }
    } finally {
      app.busy = false;
    }
  }

  async function previous() {
    if (app.busy || app.mode !== "label") return;
    const pos = Math.min(app.historyPos, app.history.length) - 1;
    if (pos < 0) { notice("No earlier image in this page yet."); return; }
    if (app.historyPos >= app.history.length && app.task) app.pending = app.task;
    app.busy = true;
    try {
      app.historyPos = pos;
      await openTask(app.history[pos], true);
    } catch (e) {
      reportError(e);
    } finally {
      app.busy = false;
    }
  }

  function releaseOnLeave() {
    if (app.mode !== "label" || !app.target || app.target.kind !== "task" ||
        !app.target.lease_id || (app.task && app.task.answer)) return;
    const headers = { "Content-Type": "application/json" };
    if (app.token) headers["Authorization"] = "Bearer " + app.token;
    if (app.worker && app.config.auth === "token") headers["X-Boxloop-Worker"] = app.worker.id;
    try {
      fetch(app.config.api + "/tasks/" + encodeURIComponent(app.target.id) + "/release", {
        method: "POST", headers, keepalive: true,
        body: JSON.stringify({ lease_id: app.target.lease_id }),
      });
    } catch (e) { /* the lease expires on its own */ }
  }

  // ---------------------------------------------------------------- edits, undo, drafts
  function snapshot() { return app.boxes.map((b) => Object.assign({}, b)); }

  function pushUndo() {
    app.undo.push({ boxes: snapshot(), selected: app.selected });
    if (app.undo.length > UNDO_LIMIT) app.undo.shift();
    app.redo = [];
  }

  function changed() {
    if (app.target && app.target.kind === "task") {
      storeSet("draft." + app.target.id, { boxes: app.boxes.map((b) => ({
        class_id: b.class_id, left: b.left, top: b.top, width: b.width, height: b.height,
        origin: b.origin, pending: b.pending, edited: b.edited, score: b.score })) });
    }
    render();
  }

  function undo(redo) {
    const from = redo ? app.redo : app.undo;
    const to = redo ? app.undo : app.redo;
    const state = from.pop();
    if (!state) return;
    to.push({ boxes: snapshot(), selected: app.selected });
    app.boxes = state.boxes;
    app.selected = app.boxes.some((b) => b.id === state.selected) ? state.selected : null;
    changed();
  }

  function selectedBox() { return app.boxes.find((b) => b.id === app.selected) || null; }

  /** A model box the person touched becomes theirs: accepted, and marked edited. */
  function markEdited(box) {
    if (box.origin === "model") { box.pending = false; box.edited = true; }
  }

  function setClass(classId) {
    app.currentClass = classId;
    const box = selectedBox();
    if (box && box.class_id !== classId) {
      pushUndo();
      const wasSuggestion = box.pending;
      box.class_id = classId;
      markEdited(box);
      if (wasSuggestion) selectNextSuggestion(); // fixed and kept: on to the next one
      changed();
    } else {
      render();
    }
  }

  function deleteSelected() {
    const box = selectedBox();
    if (!box) return;
    pushUndo();
    app.boxes = app.boxes.filter((b) => b !== box);
    app.selected = null;
    if (box.pending) selectNextSuggestion();
    changed();
  }

  /**
   * Select the first suggestion still dashed, so suggestions are reviewed by keys alone:
   * Y keeps the selected one, Del drops it, and the next one is selected.
   */
  function selectNextSuggestion() {
    const next = app.boxes.find((b) => b.pending);
    app.selected = next ? next.id : null;
    render();
  }

  function acceptSelected() {
    const box = selectedBox();
    if (!box || !box.pending) { notice("Select a dashed suggestion to keep it (Tab)."); return; }
    pushUndo();
    box.pending = false;
    selectNextSuggestion();
    changed();
  }

  function rejectRest() {
    const pending = app.boxes.filter((b) => b.pending);
    if (!pending.length) { notice("No model suggestions left."); return; }
    pushUndo();
    app.boxes = app.boxes.filter((b) => !b.pending);
    if (!selectedBox()) app.selected = null;
    notice("Dropped " + pending.length + " model suggestion(s).");
    changed();
  }

  function acceptAll() {
    const pending = app.boxes.filter((b) => b.pending);
    if (!pending.length) { notice("No model suggestions to accept."); return; }
    pushUndo();
    for (const b of pending) b.pending = false;
    notice("Accepted " + pending.length + " model box(es).");
    changed();
  }

  function cycleSelection(step) {
    if (!app.boxes.length) return;
    const i = app.boxes.findIndex((b) => b.id === app.selected);
    const next = i < 0 ? (step > 0 ? 0 : app.boxes.length - 1)
      : (i + step + app.boxes.length) % app.boxes.length;
    app.selected = app.boxes[next].id;
    render();
  }

  function nudge(dx, dy, resize) {
    const box = selectedBox();
    if (!box) return;
    pushUndo();
    if (resize) {
      box.width = clamp(box.width + dx, MIN_BOX_PX, app.imageW - box.left);
      box.height = clamp(box.height + dy, MIN_BOX_PX, app.imageH - box.top);
    } else {
      box.left = clamp(box.left + dx, 0, app.imageW - box.width);
      box.top = clamp(box.top + dy, 0, app.imageH - box.height);
    }
    markEdited(box);
    changed();
  }

  // ---------------------------------------------------------------- zoom and pan
  function fitView() {
    const vp = $("viewport").getBoundingClientRect();
    const s = Math.min(vp.width / app.imageW, vp.height / app.imageH) * 0.98;
    app.fitScale = s > 0 && isFinite(s) ? s : 1;
    app.scale = app.fitScale;
    app.panX = (vp.width - app.imageW * app.scale) / 2;
    app.panY = (vp.height - app.imageH * app.scale) / 2;
    applyView();
  }

  function zoomAt(factor, cx, cy) {
    const scale = clamp(app.scale * factor, app.fitScale * 0.5, Math.max(app.fitScale * 40, 8));
    const k = scale / app.scale;
    app.panX = cx - (cx - app.panX) * k;
    app.panY = cy - (cy - app.panY) * k;
    app.scale = scale;
    applyView();
  }

  function zoomCenter(factor) {
    const vp = $("viewport").getBoundingClientRect();
    zoomAt(factor, vp.width / 2, vp.height / 2);
  }

  function applyView() {
    const stage = $("stage");
    stage.style.width = app.imageW * app.scale + "px";
    stage.style.height = app.imageH * app.scale + "px";
    stage.style.left = app.panX + "px";
    stage.style.top = app.panY + "px";
    $("zoom-label").textContent = Math.round(app.scale * 100) + "%";
    if (app.boxes) render();
  }

  /** Client (mouse) coordinates to image pixels, clamped to the image. */
  function toImage(ev, unclamped) {
    const r = $("stage").getBoundingClientRect();
    const x = (ev.clientX - r.left) / app.scale;
    const y = (ev.clientY - r.top) / app.scale;
    if (unclamped) return { x, y };
    return { x: clamp(x, 0, app.imageW), y: clamp(y, 0, app.imageH) };
  }

  // ---------------------------------------------------------------- rendering
  function render() {
    renderOverlay();
    renderBoxList();
    renderClassList();
    const pending = app.boxes.filter((b) => b.pending).length;
    $("suggestions").hidden = pending === 0;
    $("suggestion-count").textContent = String(pending);
    $("btn-undo").disabled = app.undo.length === 0;
    $("btn-prev").disabled = Math.min(app.historyPos, app.history.length) <= 0;
  }

  function renderOverlay() {
    const svg = $("overlay");
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.classList.toggle("hide-boxes", app.hideBoxes);
    const hs = HANDLE_PX / app.scale;
    const selected = selectedBox();
    // The selected box is drawn last so its handles sit on top.
    const order = app.boxes.filter((b) => b !== selected);
    if (selected) order.push(selected);
    for (const b of order) {
      const color = colorOf(b.class_id);
      const g = svgEl("g", { "class": "box" + (b.pending ? " pending" : "") +
        (b === selected ? " selected" : ""), "data-box-id": b.id });
      g.appendChild(svgEl("rect", { "class": "body", x: b.left, y: b.top, width: b.width,
        height: b.height, stroke: color, "data-box-id": b.id }));
      const label = svgEl("text", { x: b.left + 2 / app.scale, y: b.top - 4 / app.scale,
        fill: color, "font-size": 12 / app.scale, "stroke-width": 3 / app.scale });
      label.style.fontSize = 12 / app.scale + "px";
      label.style.strokeWidth = 3 / app.scale + "px";
      let text = className(b.class_id);
      if (b.origin === "model" && b.score !== null) text += " " + b.score.toFixed(2);
      if (b.pending) text += " ?";
      label.textContent = text;
      g.appendChild(label);
      if (b === selected) {
        for (const [hx, hy, name] of handlePositions(b)) {
          g.appendChild(svgEl("rect", { "class": "handle", x: hx - hs / 2, y: hy - hs / 2,
            width: hs, height: hs, "data-handle": name, "data-box-id": b.id }));
        }
      }
      svg.appendChild(g);
    }
    if (app.drag && app.drag.kind === "draw" && app.drag.rect) {
      const r = app.drag.rect;
      svg.appendChild(svgEl("rect", { "class": "drawing", x: r.left, y: r.top, width: r.width,
        height: r.height }));
    }
  }

  function handlePositions(b) {
    const x0 = b.left, y0 = b.top, x1 = b.left + b.width, y1 = b.top + b.height;
    const xm = (x0 + x1) / 2, ym = (y0 + y1) / 2;
    return [[x0, y0, "nw"], [xm, y0, "n"], [x1, y0, "ne"], [x1, ym, "e"], [x1, y1, "se"],
      [xm, y1, "s"], [x0, y1, "sw"], [x0, ym, "w"]];
  }

  function renderBoxList() {
    const list = $("box-list");
    list.textContent = "";
    app.boxes.forEach((b, i) => {
      const li = document.createElement("li");
      li.className = (b.id === app.selected ? "selected " : "") + (b.pending ? "pending" : "");
      li.dataset.boxId = b.id;
      const sw = document.createElement("span");
      sw.className = "swatch"; sw.style.background = colorOf(b.class_id);
      li.appendChild(sw);
      let text = (i + 1) + ". " + className(b.class_id) + " " + Math.round(b.width) + "\u00d7" +
        Math.round(b.height);
      if (b.origin === "model") text += b.pending ? " ?" +
        (b.score !== null ? " " + b.score.toFixed(2) : "") : b.edited ? " \u00b7 model, edited"
        : " \u00b7 model";
      li.appendChild(document.createTextNode(text));
      li.onclick = () => { app.selected = b.id; render(); };
      list.appendChild(li);
    });
    $("box-count").textContent = "(" + app.boxes.length + ")";
  }

  function renderClassList() {
    const list = $("class-list");
    list.textContent = "";
    app.classes.forEach((c, i) => {
      const li = document.createElement("li");
      li.className = c.id === app.currentClass ? "current" : "";
      li.dataset.classId = c.id;
      const sw = document.createElement("span");
      sw.className = "swatch"; sw.style.background = colorOf(c.id);
      li.appendChild(sw);
      if (i < 9) {
        const k = document.createElement("kbd"); k.textContent = String(i + 1); li.appendChild(k);
      }
      li.appendChild(document.createTextNode(" " + c.name));
      li.onclick = () => setClass(c.id);
      list.appendChild(li);
    });
  }

  // ---------------------------------------------------------------- mouse
  function onMouseDown(ev) {
    if (app.mode === "review" && $("editor").hidden) return;
    const vp = $("viewport");
    vp.focus({ preventScroll: true });
    if (ev.button === 1 || (ev.button === 0 && app.spaceDown)) {
      ev.preventDefault();
      app.drag = { kind: "pan", x: ev.clientX, y: ev.clientY, panX: app.panX, panY: app.panY };
      vp.classList.add("panning");
      return;
    }
    if (ev.button !== 0) return;
    ev.preventDefault();
    const target = ev.target;
    const boxId = target.getAttribute && Number(target.getAttribute("data-box-id"));
    const box = boxId ? app.boxes.find((b) => b.id === boxId) : null;
    const p = toImage(ev);
    if (box && target.getAttribute("data-handle")) {
      app.drag = { kind: "resize", box, handle: target.getAttribute("data-handle"),
        start: Object.assign({}, box), p0: p, moved: false };
      return;
    }
    if (box) {
      app.selected = box.id;
      app.drag = { kind: "move", box, start: Object.assign({}, box), p0: p, moved: false };
      render();
      return;
    }
    app.selected = null;
    app.drag = { kind: "draw", p0: p, rect: null };
    render();
  }

  function onMouseMove(ev) {
    const d = app.drag;
    if (!d) return;
    if (d.kind === "pan") {
      app.panX = d.panX + ev.clientX - d.x;
      app.panY = d.panY + ev.clientY - d.y;
      applyView();
      return;
    }
    const p = toImage(ev);
    if (d.kind === "draw") {
      d.rect = { left: Math.min(d.p0.x, p.x), top: Math.min(d.p0.y, p.y),
        width: Math.abs(p.x - d.p0.x), height: Math.abs(p.y - d.p0.y) };
      renderOverlay();
      return;
    }
    const dx = p.x - d.p0.x, dy = p.y - d.p0.y;
    if (!d.moved && Math.abs(dx) < 0.5 && Math.abs(dy) < 0.5) return;
    if (!d.moved) { app.undo.push({ boxes: snapshotWith(d.box, d.start), selected: d.box.id });
      app.redo = []; d.moved = true; }
    const s = d.start, b = d.box;
    if (d.kind === "move") {
      b.left = clamp(s.left + dx, 0, app.imageW - s.width);
      b.top = clamp(s.top + dy, 0, app.imageH - s.height);
    } else {
      let x0 = s.left, y0 = s.top, x1 = s.left + s.width, y1 = s.top + s.height;
      if (d.handle.includes("w")) x0 = clamp(s.left + dx, 0, app.imageW);
      if (d.handle.includes("e")) x1 = clamp(s.left + s.width + dx, 0, app.imageW);
      if (d.handle.includes("n")) y0 = clamp(s.top + dy, 0, app.imageH);
      if (d.handle.includes("s")) y1 = clamp(s.top + s.height + dy, 0, app.imageH);
      b.left = Math.min(x0, x1); b.top = Math.min(y0, y1);
      b.width = Math.max(Math.abs(x1 - x0), MIN_BOX_PX);
      b.height = Math.max(Math.abs(y1 - y0), MIN_BOX_PX);
    }
    markEdited(b);
    renderOverlay();
  }

  /** The box list as it was before the drag started (the drag mutates the box in place). */
  function snapshotWith(box, before) {
    return app.boxes.map((b) => Object.assign({}, b === box ? before : b));
  }

  function onMouseUp() {
    const d = app.drag;
    if (!d) return;
    app.drag = null;
    $("viewport").classList.remove("panning");
    if (d.kind === "draw") {
      const r = d.rect;
      if (r && r.width >= MIN_BOX_PX && r.height >= MIN_BOX_PX) {
        pushUndo();
        const box = makeBox(Object.assign({ class_id: app.currentClass }, r), "human", false);
        app.boxes.push(box);
        app.selected = box.id;
        changed();
      } else {
        render();
      }
      return;
    }
    if ((d.kind === "move" || d.kind === "resize") && d.moved) changed();
  }

  function onWheel(ev) {
    if ($("editor").hidden) return;
    ev.preventDefault();
    const r = $("viewport").getBoundingClientRect();
    zoomAt(ev.deltaY < 0 ? 1.15 : 1 / 1.15, ev.clientX - r.left, ev.clientY - r.top);
  }

  // ---------------------------------------------------------------- keyboard
  function onKeyDown(ev) {
    if (ev.target && /^(INPUT|SELECT|TEXTAREA)$/.test(ev.target.tagName)) return;
    if ($("name-dialog").open) return;
    const help = $("help-dialog");
    if (ev.key === "?") { ev.preventDefault(); if (help.open) help.close(); else help.showModal();
      return; }
    if (help.open) return;
    if ($("editor").hidden) return;
    const ctrl = ev.ctrlKey || ev.metaKey;
    const key = ev.key;
    if (ctrl && (key === "z" || key === "Z")) { ev.preventDefault(); undo(ev.shiftKey); return; }
    if (ctrl && (key === "y" || key === "Y")) { ev.preventDefault(); undo(true); return; }
    if (ctrl) return;
    if (/^[1-9]$/.test(key)) {
      const c = app.classes[Number(key) - 1];
      if (c) setClass(c.id);
      return;
    }
    const step = ev.shiftKey ? 10 : 1;
    const arrows = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step],
      ArrowDown: [0, step] };
    if (arrows[key]) {
      ev.preventDefault();
      nudge(arrows[key][0], arrows[key][1], ev.altKey);
      return;
    }
    switch (key) {
      case " ": ev.preventDefault(); app.spaceDown = true; $("viewport").classList.add("space");
        break;
      case "Tab": ev.preventDefault(); cycleSelection(ev.shiftKey ? -1 : 1); break;
      case "Delete": case "Backspace": ev.preventDefault(); deleteSelected(); break;
      case "Enter": ev.preventDefault(); submit(false); break;
      case "a": case "A": acceptAll(); break;
      case "y": case "Y": acceptSelected(); break;
      case "r": case "R": rejectRest(); break;
      case "e": case "E": submit(true); break;
      case "p": case "P": previous(); break;
      case "h": case "H": app.hideBoxes = !app.hideBoxes; render(); break;
      case "+": case "=": zoomCenter(1.25); break;
      case "-": case "_": zoomCenter(1 / 1.25); break;
      case "0": fitView(); break;
      case "Escape":
        if (app.selected !== null) { app.selected = null; render(); }
        else if (app.mode === "review") openGallery(false).catch(reportError);
        break;
      default: break;
    }
  }

  function onKeyUp(ev) {
    if (ev.key === " ") { app.spaceDown = false; $("viewport").classList.remove("space"); }
  }

  /**
   * Any mouse or key input: the stretch since the last one counts as work, up to IDLE_MS, so an
   * image left on screen during a break does not inflate the effort figures.
   */
  function onActivity() {
    if (app.shownSince === null || document.visibilityState !== "visible") return;
    const now = performance.now();
    app.shownMs += Math.min(now - app.shownSince, IDLE_MS);
    app.shownSince = now;
  }

  function onVisibility() {
    if (document.visibilityState === "visible") {
      if (app.shownSince === null && app.target) app.shownSince = performance.now();
    } else if (app.shownSince !== null) {
      app.shownMs += Math.min(performance.now() - app.shownSince, IDLE_MS);
      app.shownSince = null;
    }
  }

  // ---------------------------------------------------------------- review mode
  async function openGallery(reload) {
    app.target = null; app.task = null;
    app.shownSince = null;
    showView("gallery");
    if (reload || !app.review.items.length) {
      app.review = { items: [], total: 0, offset: 0 };
      await loadReviewPage();
    } else {
      renderGallery();
    }
  }

  async function loadReviewPage() {
    const q = new URLSearchParams({ offset: String(app.review.offset), limit: "50" });
    if ($("review-filter").value) q.set("filter", $("review-filter").value);
    if ($("review-sort").value) q.set("sort", $("review-sort").value);
    const page = await api("GET", "/review/items?" + q.toString());
    app.review.items = app.review.items.concat(page.items || []);
    app.review.total = page.total || app.review.items.length;
    app.review.offset = app.review.items.length;
    renderGallery();
  }

  function renderGallery() {
    const grid = $("gallery-grid");
    grid.textContent = "";
    for (const item of app.review.items) {
      const card = document.createElement("div");
      card.className = "card"; card.tabIndex = 0; card.dataset.itemId = item.item_id;
      card.title = item.source_ref || item.item_id;
      const thumb = document.createElement("div");
      thumb.className = "thumb";
      const img = document.createElement("img");
      img.loading = "lazy"; img.src = item.image_url; img.alt = item.item_id;
      thumb.appendChild(img);
      const svg = svgEl("svg", { viewBox: "0 0 " + item.width + " " + item.height,
        preserveAspectRatio: "xMidYMid meet" });
      for (const b of item.boxes || []) {
        svg.appendChild(svgEl("rect", { x: b.left, y: b.top, width: b.width, height: b.height,
          stroke: colorOf(b.class_id) }));
      }
      thumb.appendChild(svg);
      card.appendChild(thumb);
      const meta = document.createElement("div");
      meta.className = "meta";
      const kind = document.createElement("span");
      kind.className = "kind " + item.kind; kind.textContent = item.kind;
      const conf = document.createElement("span");
      conf.textContent = (item.boxes || []).length + " box(es)" + (item.confidence === null ||
        item.confidence === undefined ? "" : " \u00b7 conf " + Number(item.confidence).toFixed(2));
      meta.appendChild(kind); meta.appendChild(conf);
      card.appendChild(meta);
      const open = () => openReviewItem(item);
      card.onclick = open;
      card.onkeydown = (ev) => { if (ev.key === "Enter") { ev.stopPropagation(); open(); } };
      grid.appendChild(card);
    }
    $("progress").textContent = app.review.total + " image(s)";
    $("btn-more").hidden = app.review.items.length >= app.review.total;
  }

  function openReviewItem(item) {
    app.task = item;
    app.target = { kind: "review", id: item.item_id, lease_id: null };
    const origin = item.kind === "auto" ? "model" : "human";
    const boxes = (item.boxes || []).map((b) => makeBox(b, origin, false));
    app.preCount = origin === "model" ? boxes.length : 0;
    app.priorSeconds = 0;
    app.priorNoObjects = !boxes.length;
    $("task-info").textContent = (item.source_ref || item.item_id) + " \u00b7 " + item.kind +
      (item.confidence === null || item.confidence === undefined ? "" :
        " \u00b7 confidence " + Number(item.confidence).toFixed(2));
    loadImage(item.image_url, item.width, item.height, boxes);
  }

  // ---------------------------------------------------------------- wiring
  function bindUi() {
    const vp = $("viewport");
    vp.addEventListener("mousedown", onMouseDown);
    window.addEventListener("mousemove", onMouseMove);
    window.addEventListener("mouseup", onMouseUp);
    vp.addEventListener("wheel", onWheel, { passive: false });
    vp.addEventListener("auxclick", (ev) => ev.preventDefault());
    document.addEventListener("keydown", onKeyDown);
    document.addEventListener("keyup", onKeyUp);
    document.addEventListener("visibilitychange", onVisibility);
    for (const type of ["mousedown", "mousemove", "keydown", "wheel"]) {
      window.addEventListener(type, onActivity, { capture: true, passive: true });
    }
    window.addEventListener("resize", () => { if (app.imageW) fitView(); });
    window.addEventListener("pagehide", releaseOnLeave);
    $("btn-help").onclick = () => $("help-dialog").showModal();
    $("worker-label").onclick = renameWorker;
    $("error-close").onclick = clearError;
    $("btn-submit").onclick = () => submit(false);
    $("btn-empty").onclick = () => submit(true);
    $("btn-prev").onclick = previous;
    $("btn-undo").onclick = () => undo(false);
    $("btn-accept").onclick = acceptAll;
    $("btn-reject").onclick = rejectRest;
    $("btn-back").onclick = () => openGallery(false).catch(reportError);
    $("btn-more").onclick = () => loadReviewPage().catch(reportError);
    $("review-filter").onchange = () => openGallery(true).catch(reportError);
    $("review-sort").onchange = () => openGallery(true).catch(reportError);
    // Buttons must not keep focus, or Enter/Space would press them again.
    for (const b of document.querySelectorAll("#sidebar button")) {
      b.addEventListener("mouseup", () => vp.focus({ preventScroll: true }));
    }
  }

  // Exposed for tests and the screenshot script: read-only views of the editor state.
  window.boxloopApp = {
    state: () => ({ mode: app.mode, task: app.target && app.target.id, boxes: answerBoxes(),
      pending: app.boxes.filter((b) => b.pending).length, selected: app.selected,
      suggestions: app.boxes.filter((b) => b.pending).map((b) => ({ id: b.id,
        class_id: b.class_id, left: b.left, top: b.top, width: b.width, height: b.height,
        score: b.score })),
      currentClass: app.currentClass, scale: app.scale, effort: app.target ? effort() : null }),
    ready: () => !!app.target && $("image").complete,
  };

  start();
})();
