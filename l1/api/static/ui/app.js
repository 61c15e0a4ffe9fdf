// The dashboard's one script: the token, the action buttons, the render forms, and
// live updates from /ui/events. No framework and no build step.
"use strict";

const TOKEN_KEY = "l1-token";
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
// How long a page refused a place on the live feed waits before asking again (ms).
const LISTEN_AGAIN_MS = 5000;

function token() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

function flash(message, kind) {
  const box = document.getElementById("flash");
  if (!box) return;
  box.textContent = message;
  box.className = "flash " + (kind || "ok");
  box.hidden = false;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { box.hidden = true; }, kind === "error" ? 12000 : 4000);
}

// Calls the API as any client would: the saved token goes in the Authorization header.
async function api(method, url, body, contentType) {
  const headers = { Accept: "application/json" };
  if (token()) headers.Authorization = "Bearer " + token();
  if (body !== undefined && contentType) headers["Content-Type"] = contentType;
  const response = await fetch(url, { method, headers, body });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (!response.ok) {
    const detail = data && data.detail ? data.detail : response.statusText;
    throw new Error(response.status + ": " + detail);
  }
  return data;
}

async function fetchHTML(url) {
  const response = await fetch(url, { headers: { Accept: "text/html" } });
  if (!response.ok) throw new Error(response.status + " " + response.statusText);
  return response.text();
}

function fragment(html) {
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  return template.content.firstElementChild;
}

function setupToken() {
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  if (!form || !input) return;
  input.value = token();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (input.value) localStorage.setItem(TOKEN_KEY, input.value.trim());
    else localStorage.removeItem(TOKEN_KEY);
    flash(input.value ? "Token saved in this browser." : "Token removed.");
  });
}

// Any button with data-url calls the API; data-then says what happens on success.
function setupButtons() {
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-url]");
    if (!button) return;
    event.preventDefault();
    if (button.dataset.confirm && !confirm(button.dataset.confirm)) return;
    button.disabled = true;
    try {
      const result = await api(button.dataset.method || "POST", button.dataset.url);
      const then = button.dataset.then || "";
      const action = button.dataset.action;
      flash((action || "done") + ": ok");
      if (then.startsWith("remove:")) document.querySelector(then.slice(7))?.remove();
      else if (then.startsWith("go:")) location.assign(then.slice(3));
      else if (action === "discard") location.assign("/ui");
      else if (result && result.status) await refreshRun(true);
    } catch (error) {
      flash(error.message, "error");
    } finally {
      button.disabled = false;
    }
  });
}

function paramValue(field) {
  const kind = field.dataset.kind;
  if (kind === "boolean") return field.checked;
  if (field.value === "") return undefined;
  if (kind === "number") return parseFloat(field.value);
  if (kind === "integer") return parseInt(field.value, 10);
  return field.value;
}

async function submitRender(form) {
  const named = form.dataset.named === "yes";
  const inputs = named ? {} : [];
  for (const row of form.querySelectorAll(".input-row")) {
    const text = row.querySelector("input[name=input]");
    const file = row.querySelector("input[type=file]");
    let value = text.value.trim();
    if (file && file.files.length) {
      const stored = await api("POST", "/cache", file.files[0], "application/octet-stream");
      value = stored.content_hash;
    }
    if (!value) throw new Error("every input needs an asset name, a hash or a file");
    if (named) inputs[text.dataset.name] = value; else inputs.push(value);
  }
  let params = {};
  for (const field of form.querySelectorAll("[name^='param:']")) {
    const value = paramValue(field);
    if (value !== undefined && !Number.isNaN(value)) params[field.name.slice(6)] = value;
  }
  const extra = form.querySelector("[name=extra]");
  if (extra && extra.value.trim()) {
    try { params = Object.assign(params, JSON.parse(extra.value)); }
    catch (_) { throw new Error("the extra parameters are not valid JSON"); }
  }
  const run = await api("POST", "/runs", JSON.stringify({ recipe: form.dataset.recipe, inputs, params }), "application/json");
  location.assign("/ui/runs/" + run.run_id);
}

function setupForms() {
  for (const form of document.querySelectorAll("form.render-form")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try { await submitRender(form); }
      catch (error) { flash(error.message, "error"); button.disabled = false; }
    });
  }
  const upload = document.getElementById("upload-form");
  if (upload) {
    upload.addEventListener("submit", async (event) => {
      event.preventDefault();
      const file = document.getElementById("upload-file").files[0];
      try {
        const stored = await api("POST", "/cache", file, "application/octet-stream");
        flash("stored " + stored.content_hash.slice(0, 12));
        location.reload();
      } catch (error) { flash(error.message, "error"); }
    });
  }
}

// The run page: swap in the freshly rendered detail, keeping a playing video as it is.
async function refreshRun(force) {
  const section = document.getElementById("run-detail");
  if (!section) return;
  const html = await fetchHTML("/ui/runs/" + section.dataset.run + "?part=detail");
  const incoming = document.createElement("div");
  incoming.innerHTML = html;
  const state = incoming.querySelector("#run-state");
  const status = state ? state.dataset.status : "";
  if (!force && status === section.dataset.status && TERMINAL.has(status)) return;
  section.innerHTML = html;
  section.dataset.status = status;
}

async function onRunUpdate(update) {
  const section = document.getElementById("run-detail");
  if (section && section.dataset.run === update.run_id) {
    if (update.status === null) { flash("This run was discarded.", "error"); return; }
    await refreshRun(false);
    return;
  }
  const table = document.getElementById("runs");
  if (!table) return;
  const filter = table.dataset.statusFilter;
  const row = document.getElementById("run-" + update.run_id);
  if (update.status === null || (filter && update.status !== filter)) {
    row?.remove();
    return;
  }
  const fresh = fragment(await fetchHTML("/ui/runs/" + update.run_id + "?part=row"));
  if (row) row.replaceWith(fresh);
  else if (update.event === "submitted" || filter) {
    table.tBodies[0].prepend(fresh);
    document.getElementById("no-runs")?.remove();
  }
}

async function catchUp() {
  const section = document.getElementById("run-detail");
  if (section) await refreshRun(false);
  for (const row of document.querySelectorAll("#runs tr[data-run]")) {
    if (TERMINAL.has(row.dataset.status)) continue;
    row.replaceWith(fragment(await fetchHTML("/ui/runs/" + row.dataset.run + "?part=row")));
  }
}

function setupLive() {
  if (!document.getElementById("runs") && !document.getElementById("run-detail")) return;
  const indicator = document.getElementById("live-state");
  let chain = Promise.resolve();
  const listen = () => {
    const source = new EventSource("/ui/events");
    // Once listening, catch up on what changed between rendering the page and now.
    source.addEventListener("open", () => {
      indicator?.classList.add("on");
      chain = chain.then(catchUp).catch((error) => console.warn(error));
    });
    source.addEventListener("error", () => {
      indicator?.classList.remove("on");
      // A refusal (429: too many pages listening) closes the source for good; the
      // browser retries only a dropped stream, so try again later here.
      if (source.readyState === EventSource.CLOSED) setTimeout(listen, LISTEN_AGAIN_MS);
    });
    source.addEventListener("run", (event) => {
      const update = JSON.parse(event.data);
      // One at a time, in order, so that an older state never replaces a newer one.
      chain = chain.then(() => onRunUpdate(update)).catch((error) => console.warn(error));
    });
  };
  listen();
}

function setupRefresh() {
  const box = document.querySelector("[data-refresh]");
  if (!box) return;
  setInterval(async () => {
    try { box.innerHTML = await fetchHTML(box.dataset.refresh); } catch (_) { /* next time */ }
  }, 3000);
}

document.addEventListener("DOMContentLoaded", () => {
  setupToken();
  setupButtons();
  setupForms();
  setupLive();
  setupRefresh();
});
