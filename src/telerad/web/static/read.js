// The reading page: the report editor beside the viewer, through telerad's reports API.
//
// Never lose typing: every keystroke is first kept in this browser's storage with the
// revision of the draft it started from; ~800 ms after the last one the draft is sent with
// that revision. A network blip only delays it (sent again 1 s, 2 s, 4 s... at most 15 s
// apart, and at once when the browser is back online); a draft changed elsewhere is never
// overwritten (the server answers 409 draft_conflict and the page says so). What was kept
// for an older revision is shown, never applied.
(function () {
  "use strict";
  const root = document.getElementById("reading");
  if (!root) { return; }
  const T = JSON.parse(document.getElementById("read-texts").textContent);
  const zone = root.dataset.zone;
  const api = "/api/exams/" + root.dataset.examId;
  // The server's clock rules (the call's time is checked against it).
  const skew = Date.parse(root.dataset.now) - Date.now();
  const now = () => new Date(Date.now() + skew);

  function fill(text, values) {
    return text.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? values[name] : whole));
  }

  // -- the site's wall time (what a datetime-local input holds) and instants ------------------
  function wallParts(date) {
    const parts = {};
    new Intl.DateTimeFormat("en-GB", {
      timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    }).formatToParts(date).forEach((p) => { parts[p.type] = p.value; });
    return parts;
  }
  function wallTime(date) {
    const p = wallParts(date);
    return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}`;
  }
  function clock(date) {
    const p = wallParts(date);
    return `${p.hour}:${p.minute}`;
  }
  function zoneOffset(date) {  // ms the site's zone is ahead of UTC at this instant
    const p = wallParts(date);
    const wall = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
    return wall - Math.floor(date.getTime() / 1000) * 1000;
  }
  function instant(wall) {  // "2026-11-24T20:05" in the site's zone
    const [day, time] = wall.split("T");
    const [y, mo, d] = day.split("-").map(Number);
    const [h, mi] = time.split(":").map(Number);
    const guess = Date.UTC(y, mo - 1, d, h, mi);
    const first = guess - zoneOffset(new Date(guess));
    return new Date(guess - zoneOffset(new Date(first)));  // right across a DST change
  }

  function call(method, url, body) {
    const headers = { "X-CSRF-Token": root.dataset.csrf, Accept: "application/json" };
    if (body !== undefined) { headers["Content-Type"] = "application/json"; }
    return fetch(url, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }
  async function details(answer) {
    try {
      const data = await answer.json();
      const message = data.message || (typeof data.detail === "string" ? data.detail : "");
      return { error: data.error || "", message };
    } catch (e) {
      return { error: "", message: "" };
    }
  }

  // -- the editor -------------------------------------------------------------------------
  const form = document.getElementById("report-editor");
  const status = document.getElementById("save-status");
  const key = `telerad.draft.${root.dataset.userId}.${root.dataset.examId}`;
  const olderKey = key + ".older";
  const draft = {
    revision: Number(root.dataset.revision),
    hasReport: root.dataset.hasReport === "true",
    template: root.dataset.template,
    dirty: false,      // the form holds typing the server does not have yet
    blocked: "",       // conflict, invalid, signed_out, refused: no automatic saving
    running: null, timer: 0, retry: 0, delay: 1000,
  };
  let leaving = false;

  const fields = () => (form ? Array.from(form.querySelectorAll("[data-field]")) : []);
  function content() {
    const values = {};
    fields().forEach((field) => { values[field.name] = field.value; });
    return values;
  }
  function apply(values) {
    fields().forEach((field) => { if (field.name in values) { field.value = values[field.name]; } });
  }
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  function untouched(field) {
    if (field.tagName === "SELECT") {
      return Array.from(field.options).every((o) => o.selected === o.defaultSelected);
    }
    return field.value === field.defaultValue;
  }

  function store(name, value) {
    try {
      if (value === null) { localStorage.removeItem(name); } else { localStorage.setItem(name, JSON.stringify(value)); }
    } catch (e) { /* storage off or full: the server's copy is all there is */ }
  }
  function recall(name) {
    try { return JSON.parse(localStorage.getItem(name) || "null"); } catch (e) { return null; }
  }
  const remember = () => store(key, { base: draft.revision, template: draft.template, content: content() });

  function say(state, values) {
    if (!status) { return; }
    status.dataset.state = state;
    status.replaceChildren(document.createTextNode(fill(T["read_" + state] || state, values || {})));
    if (state === "conflict" || state === "refused") {
      const reload = document.createElement("button");
      reload.type = "button";
      reload.className = "secondary";
      reload.textContent = T.read_reload;
      reload.addEventListener("click", () => { leaving = true; window.location.reload(); });
      status.append(" ", reload);
    } else if (state === "signed_out") {
      const link = document.createElement("a");
      link.href = "/signin";
      link.target = "_blank";
      link.rel = "noopener";
      link.textContent = T.read_sign_in_again;
      status.append(" ", link);
    }
  }
  function block(state) {
    draft.blocked = state;
    say(state);
  }

  function errorBox(field) { return document.getElementById("error-" + field.name); }
  function setError(field, text) {
    const box = errorBox(field);
    if (!box) { return; }
    box.textContent = text;
    box.hidden = false;
    field.setAttribute("aria-invalid", "true");
    const ids = (field.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
    if (!ids.includes(box.id)) { field.setAttribute("aria-describedby", [...ids, box.id].join(" ")); }
  }
  function clearError(field) {
    const box = errorBox(field);
    if (!box || box.hidden) { return; }
    box.hidden = true;
    box.textContent = "";
    field.removeAttribute("aria-invalid");
    const ids = (field.getAttribute("aria-describedby") || "").split(" ").filter((id) => id && id !== box.id);
    if (ids.length) { field.setAttribute("aria-describedby", ids.join(" ")); } else { field.removeAttribute("aria-describedby"); }
  }
  // The API names each problem "field: code", separated by "; " (after "cannot sign yet: ").
  function showErrors(message) {
    const marked = [];
    message.replace(/^cannot sign yet: /, "").split("; ").forEach((pair) => {
      const found = /^(.+?): ([a-z_]+)$/.exec(pair.trim());
      const field = found && form ? fields().find((f) => f.name === found[1]) : null;
      if (field) {
        setError(field, T["read_error_" + found[2]] || found[2]);
        marked.push(field);
      }
    });
    return marked;
  }

  function schedule(ms) {
    clearTimeout(draft.timer);
    draft.timer = setTimeout(save, ms);
  }
  function offline() {
    say("offline");
    clearTimeout(draft.retry);
    draft.retry = setTimeout(save, draft.delay);
    draft.delay = Math.min(draft.delay * 2, 15000);
  }
  async function refused(answer) {
    const { error, message } = await details(answer);
    if (answer.status === 409 && error === "draft_conflict") { block("conflict"); return; }
    if (answer.status === 401) { block("signed_out"); return; }
    if (answer.status === 400 || answer.status === 422) {
      showErrors(message);
      block("invalid");
      return;
    }
    if (answer.status >= 500 || answer.status === 429) { offline(); return; }
    block("refused");  // 403, 404, another 409: the exam moved on (another tab signed...)
  }

  // The report begins at the first save (so the template may be chosen until then); what
  // was not typed in takes the server's beginning (normal findings, the indication).
  async function begin() {
    const query = draft.template ? "?template_code=" + encodeURIComponent(draft.template) : "";
    const answer = await call("POST", `${api}/report${query}`);
    if (!answer.ok) { await refused(answer); return false; }
    const report = await answer.json();
    if (report.revision !== 1 || report.template.code !== draft.template) {
      block("conflict");  // begun meanwhile elsewhere: never written over
      return false;
    }
    fields().forEach((field) => {
      if (untouched(field)) { field.value = report.draft[field.name] || ""; }
    });
    draft.revision = report.revision;
    draft.hasReport = true;
    root.dataset.hasReport = "true";
    const choice = document.getElementById("template-choice");
    if (choice) { choice.hidden = true; }
    remember();
    return true;
  }

  async function send() {
    say("saving");
    try {
      if (!draft.hasReport && !(await begin())) { return; }
      const sent = content();
      const answer = await call("PUT", `${api}/report/draft`, { content: sent, base_revision: draft.revision });
      if (!answer.ok) { await refused(answer); return; }
      draft.revision = (await answer.json()).revision;
      draft.delay = 1000;
      if (same(sent, content())) {
        draft.dirty = false;
        store(key, null);
        say("saved", { time: clock(now()) });
      } else {  // typed during the save: the rest goes from the new revision
        remember();
        schedule(800);
      }
    } catch (e) {
      offline();  // no answer: the network, or the server restarting
    }
  }

  async function save() {
    clearTimeout(draft.timer);
    clearTimeout(draft.retry);
    while (draft.running) { await draft.running; }
    if (!draft.dirty || draft.blocked) { return; }
    draft.running = send();
    try { await draft.running; } finally { draft.running = null; }
  }

  function lockTemplate() {
    const choice = document.getElementById("template-choice");
    if (choice) { choice.querySelectorAll("select, button").forEach((el) => { el.disabled = true; }); }
  }

  function typed(event) {
    const field = event.target.closest("[data-field]");
    if (!field) { return; }
    clearError(field);
    if (draft.blocked === "invalid") { draft.blocked = ""; }
    draft.dirty = true;
    remember();
    lockTemplate();
    if (!draft.blocked) {
      say("saving");
      schedule(800);
    }
  }

  function showOlder(kept) {
    const box = document.getElementById("older-typing");
    const list = document.getElementById("older-content");
    if (!box || !list) { return; }
    list.replaceChildren();
    Object.entries(kept.content || {}).forEach(([name, value]) => {
      const field = fields().find((f) => f.name === name);
      if (field && field.value === value) { return; }
      const label = field && field.labels.length ? field.labels[0].textContent.replace("*", "").trim() : name;
      const term = document.createElement("dt");
      term.textContent = label;
      const text = document.createElement("dd");
      text.textContent = value || "—";
      list.append(term, text);
    });
    box.hidden = false;
    document.getElementById("forget-older").addEventListener("click", () => {
      store(olderKey, null);
      box.hidden = true;
    }, { once: true });
  }

  if (form) {
    form.addEventListener("input", typed);
    form.addEventListener("submit", (event) => event.preventDefault());
    const kept = recall(key);
    if (kept && kept.base === draft.revision && kept.template === draft.template) {
      apply(kept.content || {});  // typed here and never saved: send it now
      draft.dirty = true;
      lockTemplate();
      save();
    } else if (kept) {
      if (!same(kept.content, content())) { store(olderKey, kept); }
      store(key, null);
    }
    const older = recall(olderKey);
    if (older) { showOlder(older); }
    window.addEventListener("online", () => {
      if (draft.dirty && !draft.blocked) { draft.delay = 1000; save(); }
    });
    const again = () => {
      if (draft.blocked === "signed_out" && document.visibilityState === "visible") {
        draft.blocked = "";
        save();
      }
    };
    window.addEventListener("focus", again);
    document.addEventListener("visibilitychange", again);
    window.addEventListener("beforeunload", (event) => {
      if (draft.dirty && !leaving) {
        event.preventDefault();
        event.returnValue = "";
      }
    });
  }

  // -- releasing and signing ---------------------------------------------------------------
  function confirmFinal() {
    const dialog = document.getElementById("confirm-final");
    if (!dialog || typeof dialog.showModal !== "function") { return Promise.resolve(window.confirm(T.read_confirm_final)); }
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "sign"), { once: true });
      dialog.returnValue = "";
      dialog.showModal();
    });
  }

  async function release(kind, button) {
    const problem = document.getElementById("release-error");
    const show = (text) => { problem.textContent = text; problem.hidden = false; };
    problem.hidden = true;
    fields().forEach(clearError);
    if (kind === "final" && !(await confirmFinal())) { return; }
    button.disabled = true;
    try {
      if (!draft.hasReport) { draft.dirty = true; }
      if (draft.blocked === "invalid") { draft.blocked = ""; }
      await save();  // what was typed goes first
      if (draft.dirty) { await save(); }
      if (draft.dirty) {
        const marked = fields().filter((f) => f.getAttribute("aria-invalid") === "true");
        show(T.read_save_first + (marked.length ? " " + T.read_fix_fields : ""));
        if (marked.length) { marked[0].focus(); }
        return;
      }
      const answer = await call("POST", `${api}/report/release`, { kind });
      if (answer.status === 201) {
        store(key, null);
        await released(kind);
        return;
      }
      const { message } = await details(answer);
      const marked = answer.status === 400 || answer.status === 422 ? showErrors(message) : [];
      if (marked.length) {
        show(`${T.read_release_failed} ${T.read_fix_fields}`);
        marked[0].focus();
      } else {
        show(`${T.read_release_failed} ${message || answer.status}`);
      }
    } catch (e) {
      show(`${T.read_release_failed} ${T.read_network_error}`);
    } finally {
      button.disabled = false;
    }
  }

  async function released(kind) {
    if (kind === "final") {  // the page becomes the signed report's, with its addendum
      leaving = true;
      window.location.assign(window.location.pathname + "?notice=final");
      return;
    }
    const answer = await call("GET", `${api}/report`);
    if (answer.ok) { draft.revision = (await answer.json()).revision; }
    if (kind === "preliminary") {
      root.querySelectorAll("#release-preliminary, form.give-back").forEach((el) => el.remove());
      const state = document.getElementById("state");
      if (state) { state.textContent = "preliminary"; }
    } else {
      fields().forEach((field) => { field.value = ""; field.defaultValue = ""; });
    }
    say(kind === "preliminary" ? "preliminary_released" : "addendum_signed");
    await refreshParts(false);
  }

  root.querySelectorAll("[data-release]").forEach((button) => {
    button.addEventListener("click", () => release(button.dataset.release, button));
  });

  // -- the parts that change under the page: signed versions, critical findings -------------
  function busy(part) {
    return part.contains(document.activeElement) || part.querySelector("details[open]") !== null;
  }
  async function refreshParts(background) {
    const answer = await fetch(root.dataset.partsUrl, {
      credentials: "same-origin", headers: background ? { "X-Telerad-Background": "1" } : {},
    });
    if (!answer.ok) { return; }
    const fresh = document.createElement("div");
    fresh.innerHTML = await answer.text();
    ["findings-list", "versions-list"].forEach((id) => {
      const part = document.getElementById(id);
      const replacement = fresh.querySelector("#" + id);
      if (part && replacement && !(background && busy(part))) { part.replaceWith(replacement); }
    });
  }
  // The hospital's acknowledgement, an escalation: seen without a reload.
  setInterval(() => refreshParts(true).catch(() => {}), 30000);

  // -- critical findings and their calls ------------------------------------------------------
  const criticalStatus = document.getElementById("critical-status");
  document.addEventListener("focusin", (event) => {
    const callForm = event.target.closest && event.target.closest("form.call-form");
    const at = callForm && callForm.elements.called_at;
    if (at && !at.dataset.touched) { at.value = wallTime(now()); }  // "now" until changed
  });
  document.addEventListener("input", (event) => {
    if (event.target.name === "called_at") { event.target.dataset.touched = "true"; }
  });
  document.addEventListener("submit", async (event) => {
    const callForm = event.target;
    if (!callForm.matches("form.call-form")) { return; }
    event.preventDefault();  // the browser checked the required fields (read-back) first
    const problem = callForm.querySelector(".form-error");
    problem.hidden = true;
    const el = callForm.elements;
    const made = {
      called_person: el.called_person.value, phone: el.phone.value, said: el.said.value,
      called_at: instant(el.called_at.value).toISOString(), read_back: el.read_back.checked,
    };
    const findingId = callForm.dataset.findingId;
    const url = findingId ? `${api}/critical-findings/${findingId}/calls` : `${api}/critical-findings`;
    const submit = callForm.querySelector("button[type=submit]");
    submit.disabled = true;
    try {
      const answer = await call("POST", url, findingId ? made : { finding: el.finding.value, call: made });
      if (answer.status === 201) {
        callForm.reset();
        delete el.called_at.dataset.touched;
        el.called_at.value = wallTime(now());
        await refreshParts(false);
        criticalStatus.textContent = "";  // said again for a second call
        setTimeout(() => { criticalStatus.textContent = T.read_call_recorded; }, 100);
        return;
      }
      const { message } = await details(answer);
      problem.textContent = `${T.read_call_failed} ${message || answer.status}`;
      problem.hidden = false;
    } catch (e) {
      problem.textContent = `${T.read_call_failed} ${T.read_network_error}`;
      problem.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
  document.querySelectorAll("form.call-form input[name=called_at]").forEach((at) => {
    at.value = wallTime(now());
  });

  // -- the split between the viewer and the report --------------------------------------------
  const splitter = root.querySelector(".splitter");
  if (splitter) {
    const widthKey = "telerad.viewer-width";
    let width = 60;
    const setWidth = (percent) => {
      width = Math.max(25, Math.min(80, Math.round(percent)));
      root.style.setProperty("--viewer-width", width + "%");
      splitter.setAttribute("aria-valuenow", String(width));
    };
    setWidth(Number(recall(widthKey)) || 60);
    const keep = () => store(widthKey, width);
    splitter.addEventListener("keydown", (event) => {
      const step = { ArrowLeft: -5, ArrowRight: 5, Home: -100, End: 100 }[event.key];
      if (step === undefined) { return; }
      event.preventDefault();
      setWidth(width + step);
      keep();
    });
    splitter.addEventListener("pointerdown", (event) => {
      splitter.setPointerCapture(event.pointerId);
      root.classList.add("resizing");
    });
    splitter.addEventListener("pointermove", (event) => {
      if (!splitter.hasPointerCapture(event.pointerId)) { return; }
      const box = root.getBoundingClientRect();
      setWidth(((event.clientX - box.left) / box.width) * 100);
    });
    splitter.addEventListener("pointerup", () => {
      root.classList.remove("resizing");
      keep();
    });
  }
})();
