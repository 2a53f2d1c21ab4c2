// Conduit website: forms call the JSON API with the session's CSRF token; a few small behaviours.
// A form with data-api="/v1/…" is sent with fetch (JSON, or multipart with enctype="multipart/form-data"),
// with X-CSRF-Token from <meta name="csrf-token">; "{field}" in data-api is the value of that data-path field. data-then says what happens on success:
//   reload (with data-success shown after the reload), go (to data-next, "{id}" = the answer's id),
//   message (show data-success), secret (show a new API key once), checkout (go to Stripe), task (poll it),
//   signin (go, or ask for the second factor), fill (show the answer's fields in the form's data-out box).
(() => {
  "use strict";
  const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  function setPath(obj, path, value) {
    const parts = path.split(".");
    let node = obj;
    for (const part of parts.slice(0, -1)) node = node[part] ??= {};
    node[parts[parts.length - 1]] = value;
  }

  function jsonBody(form) {
    const body = {};
    for (const el of form.elements) {
      if (!el.name || el.disabled || el.type === "file" || el.type === "submit" || "path" in el.dataset) continue;
      if (el.type === "checkbox") { setPath(body, el.name, el.checked); continue; }
      let value = el.value;
      if (value === "" && "optional" in el.dataset) continue;
      const type = el.dataset.type;
      if (type === "number") value = Number(value);
      else if (type === "list") value = value.split(",").map((s) => s.trim()).filter(Boolean);
      else if (type === "numbers") value = value.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
      else if (type === "utc") value = `${value.length === 16 ? `${value}:00` : value}Z`;  // datetime-local, in UTC
      else if (type === "chat") value = [{ role: "user", content: value }];
      setPath(body, el.name, value);
    }
    return body;
  }

  function multipartBody(form) {
    const data = new FormData(form);
    for (const [name, value] of [...data.entries()]) {
      if (value instanceof File && value.size === 0 && value.name === "") data.delete(name);
    }
    return data;
  }

  // <input type="file" data-upload="input.image">: the chosen file is uploaded (POST /v1/uploads) and its id put
  // at that path of the JSON body; data-upload="image_part" adds it to the first message as an image_url part.
  async function uploadFiles(form, body) {
    for (const el of form.querySelectorAll('input[type="file"][data-upload]')) {
      const file = el.files?.[0];
      if (!file) continue;
      const data = new FormData();
      data.append("file", file);
      const uploaded = await api("POST", "/v1/uploads", data);
      if (el.dataset.upload === "image_part") {
        const message = body.messages[0];
        message.content = [{ type: "text", text: message.content }, { type: "image_url", image_url: { url: uploaded.id } }];
      } else {
        setPath(body, el.dataset.upload, uploaded.id);
      }
    }
    return body;
  }

  async function api(method, url, body) {
    const headers = { Accept: "application/json", "X-CSRF-Token": csrf() };
    let payload;
    if (body instanceof FormData) payload = body;
    else if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
    const response = await fetch(url, { method, headers, body: payload, credentials: "same-origin" });
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (!response.ok) throw new Error(data?.error?.message || `request failed (HTTP ${response.status})`);
    return data;
  }

  // Where "go" may send the browser: a path on this site, as the browser itself reads it; anything else (another
  // origin, a scheme, "//host", back slashes, control characters such as a tab the URL parser would drop)
  // goes to the dashboard. The server checks sign-in's "next" too; this is the last word before navigating.
  function sameSitePath(target) {
    const fallback = "/dashboard";
    if (typeof target !== "string" || !target.startsWith("/") || /[\u0000-\u0020\u007f-\u009f\\]/.test(target)) {
      return fallback;
    }
    let url;
    try { url = new URL(target, location.origin); } catch { return fallback; }
    if (url.origin !== location.origin || target.startsWith("//")) return fallback;
    return url.pathname + url.search + url.hash;
  }

  // data-api="/v1/admin/accounts/{account}/role": "{name}" is the value of the form's field marked data-path.
  function apiPath(form) {
    return form.dataset.api.replace(/\{(\w+)\}/g, (_, name) => encodeURIComponent(form.elements[name]?.value || ""));
  }

  function show(el, text) { if (el) { el.textContent = text; el.hidden = false; } }

  function renderOutputs(task, into) {
    into.replaceChildren();
    for (const out of task.outputs || []) {
      if (out.type === "text" || out.text) {
        const pre = document.createElement("pre"); pre.className = "text-output"; pre.textContent = out.text || "";
        into.append(pre);
      } else if ((out.content_type || "").startsWith("image/")) {
        const img = document.createElement("img"); img.className = "preview"; img.src = out.url;
        img.alt = `${out.type} output of task ${task.id}`; into.append(img);
      } else {
        const a = document.createElement("a"); a.href = out.url; a.textContent = `${out.type} output`; into.append(a);
      }
    }
  }

  async function pollTask(form, task) {
    const out = form.querySelector("[data-out]");
    const status = document.createElement("p");
    status.className = "muted task-status";
    out.replaceChildren(status);
    while (true) {
      status.textContent = `Task ${task.id}: ${task.status}`;
      status.dataset.status = task.status;
      if (TERMINAL.has(task.status)) break;
      await new Promise((resolve) => setTimeout(resolve, 400));
      task = await api("GET", `/v1/tasks/${task.id}`);
    }
    const box = document.createElement("div");
    out.append(box);
    if (task.status === "succeeded") {
      renderOutputs(task, box);
      const cost = document.createElement("p"); cost.className = "muted";
      cost.textContent = `Charged ${task.credits.charged} credits.`;
      out.append(cost);
    } else if (task.error) {
      show(form.querySelector("[data-error]"), task.error.message);
    }
  }

  const then = {
    reload(form) {
      if (form.dataset.success) sessionStorage.setItem("flash", form.dataset.success);
      location.reload();
    },
    go(form, data) { location.assign(sameSitePath((form.dataset.next || "/").replace("{id}", data?.id ?? ""))); },
    message(form) { show(form.querySelector("[data-out]"), form.dataset.success || "Done."); },
    secret(form, data) {
      const box = document.getElementById("secret-box");
      document.getElementById("new-secret").textContent = data.secret;
      box.hidden = false;
      box.scrollIntoView({ block: "center" });
    },
    checkout(form, data) { location.assign(data.url); },
    // Sign-in: an account with two-step sign-in answers a challenge; its code form takes over.
    signin(form, data) {
      if (data?.object !== "second_factor_required") return then.go(form, data);
      const step = document.getElementById("second-factor");
      step.elements.challenge.value = data.challenge;
      form.hidden = true;
      step.hidden = false;
      step.elements.code.focus();
    },
    // Shows each field of the answer in the element named by data-show="field" inside the form's output box:
    // text, a list (one item per line) or an image (the field's data: URI).
    fill(form, data) {
      const out = form.querySelector("[data-out]");
      for (const el of out.querySelectorAll("[data-show]")) {
        const value = data?.[el.dataset.show];
        if (el instanceof HTMLImageElement) el.src = value || "";
        else el.textContent = Array.isArray(value) ? value.join("\n") : String(value ?? "");
      }
      out.hidden = false;
      for (const next of document.querySelectorAll(form.dataset.reveal || "[data-none]")) next.hidden = false;
    },
    task(form, data) { return pollTask(form, data); },
    // A chat completion: its first choice's text.
    chat(form, data) {
      const pre = document.createElement("pre"); pre.className = "text-output";
      pre.textContent = data?.choices?.[0]?.message?.content || "";
      form.querySelector("[data-out]").replaceChildren(pre);
    },
  };

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    if ("navigate" in form.dataset) {
      // A GET form whose target redirects to another site (Google/GitHub sign-in): the CSP's form-action
      // allows only this origin, redirects included, so the browser is sent there as a plain navigation.
      event.preventDefault();
      const query = new URLSearchParams(new FormData(form)).toString();
      location.assign(`${form.getAttribute("action")}?${query}`);
      return;
    }
    if (!form.dataset.api) return;
    event.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    const error = form.querySelector("[data-error]");
    const out = form.querySelector("[data-out]");
    if (error) error.hidden = true;
    if (out && form.dataset.then !== "task") out.hidden = true;
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const method = (form.dataset.method || "POST").toUpperCase();
      const multipart = form.enctype === "multipart/form-data";
      const body = multipart ? multipartBody(form) : await uploadFiles(form, jsonBody(form));
      const data = await api(method, apiPath(form), body);
      await then[form.dataset.then || "reload"](form, data);
      if ("reset" in form.dataset) form.reset();
    } catch (err) {
      show(error, err.message);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  });

  // <select data-canned-for="#textarea">: choosing a prepared reply puts its text in the message, to edit.
  document.addEventListener("change", (event) => {
    const select = event.target;
    if (!(select instanceof HTMLSelectElement) || !select.dataset.cannedFor || !select.value) return;
    const box = document.querySelector(select.dataset.cannedFor);
    box.value = box.value ? `${box.value}\n\n${select.value}` : select.value;
    select.value = "";
    box.focus();
  });

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    const text = document.querySelector(button.dataset.copy)?.textContent || "";
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const range = document.createRange();
      range.selectNodeContents(document.querySelector(button.dataset.copy));
      getSelection().removeAllRanges(); getSelection().addRange(range);
      document.execCommand("copy");
    }
    button.textContent = "Copied";
  });

  // The task page follows its task's live events (EventSource resumes by itself with Last-Event-ID after a drop):
  // the status and progress as they change, then the page reloads once to show the outputs and charges.
  function followTask(live) {
    const source = new EventSource(live.dataset.taskEvents);
    const bar = live.querySelector("progress");
    const label = live.querySelector("[data-progress-label]");
    const badge = document.querySelector("#task-status .badge");
    const setStatus = (status) => { if (badge) { badge.textContent = status; badge.className = `badge ${status}`; } };
    source.addEventListener("task.started", () => setStatus("running"));
    source.addEventListener("task.progress", (event) => {
      const report = JSON.parse(event.data).progress || {};
      live.hidden = false;
      if (typeof report.percent === "number") { bar.max = 100; bar.value = report.percent; }
      const parts = [];
      if (report.step !== undefined && report.total_steps) parts.push(`${report.unit || "step"} ${report.step} of ${report.total_steps}`);
      if (report.queue_position !== undefined) parts.push(`position ${report.queue_position} in the provider's queue`);
      if (report.upstream_status) parts.push(String(report.upstream_status).toLowerCase());
      if (report.logs?.length) parts.push(report.logs[report.logs.length - 1]);
      label.textContent = parts.join(" · ");
    });
    for (const end of ["task.succeeded", "task.failed", "task.canceled"]) {
      source.addEventListener(end, (event) => {
        source.close();
        setStatus(JSON.parse(event.data).status);
        location.reload();
      });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const live = document.querySelector("[data-task-events]");
    if (live) followTask(live);
    const flash = sessionStorage.getItem("flash");
    if (flash) { sessionStorage.removeItem("flash"); show(document.getElementById("flash"), flash); }
    const every = Number(document.body.dataset.refresh || (document.querySelector("[data-refresh-page]") ? 1500 : 0));
    if (every) setTimeout(() => location.reload(), every);
  });
})();
