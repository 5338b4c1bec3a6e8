// The hospital portal. Live pages (the list of exams, one exam): the server says when what
// they show changed (server-sent events, a digest only); the page fetches the new HTML.
// The request form: contraindication warnings while typing (the server checks again).
(function () {
  "use strict";

  // Whether the person is typing in this part of the page: an update must not wipe it.
  function editing(part) {
    const typed = Array.from(part.querySelectorAll("textarea, input[type=text]"))
      .some((field) => field.value.trim() !== "");
    const focused = document.activeElement;
    return typed || (part.contains(focused) && focused.matches("textarea, input, select"));
  }

  function update(container, html) {
    const fresh = document.createElement("div");
    fresh.innerHTML = html;
    const kept = container.querySelector("[data-keep-when-editing]");
    if (kept && editing(kept) && fresh.querySelector("#" + kept.id)) {
      // Replace every other part in place, so focus and typed text stay where they are.
      container.querySelectorAll("[data-live-part]").forEach((part) => {
        const replacement = fresh.querySelector("#" + part.id);
        if (part !== kept && replacement) { part.replaceWith(replacement); }
      });
      return;
    }
    container.replaceChildren(...fresh.childNodes);
  }

  function live(container) {
    const status = document.getElementById("live-status");
    async function refresh() {
      // A background request: it must not keep an unattended screen's session alive.
      const answer = await fetch(container.dataset.liveUrl, {
        credentials: "same-origin", headers: { "X-Telerad-Background": "1" },
      });
      if (answer.status === 401) { window.location.href = "/signin"; return; }
      if (!answer.ok) { return; }
      const before = document.getElementById("state");
      const stateBefore = before ? before.dataset.state : "";
      update(container, await answer.text());
      // Say a new state out loud (screen readers), once, rather than the whole page again.
      const after = document.getElementById("state");
      const announce = document.getElementById("live-announce");
      if (announce && after && after.dataset.state !== stateBefore) {
        announce.textContent = after.parentElement.textContent.trim();
      }
      // The notice of the last action (filed, done...) is now the past: the page moved on.
      document.querySelectorAll("main > .notice").forEach((notice) => notice.remove());
      container.dataset.updated = String(Number(container.dataset.updated || 0) + 1);
    }
    const events = new EventSource(container.dataset.eventsUrl);
    events.addEventListener(container.dataset.event, refresh);
    events.addEventListener("signed_out", () => { window.location.href = "/signin"; });
    events.onopen = () => { if (status) { status.dataset.state = "live"; } };
    events.onerror = () => { if (status) { status.dataset.state = "reconnecting"; } };
  }

  // The same rules as telerad.workflow.requests.checks (the server's word is final).
  const NO_CONTRAST = /\b(?:without|sans|no|non)[\s-]+(?:contrast|contraste|injection|inject\w*|iode|pdc|gado\w*)/gi;
  const CONTRAST = /contrast|inject|angio|\bpdc\b|iod[ée]|gado|arthro/i;
  const IONISING = ["CT", "CR", "DX", "XA", "RF", "MG", "NM", "PT"];
  const EGFR_CONTRAST_LIMIT = 30;

  function warnings(form) {
    const modality = form.elements.modality.value.trim().toUpperCase();
    const contrast = CONTRAST.test(form.elements.exam_asked.value.replace(NO_CONTRAST, " "));
    const pregnant = ["yes", "possible"].includes(form.elements.pregnancy.value);
    const egfrText = form.elements.egfr.value.trim().replace(",", ".");
    const egfr = egfrText === "" ? NaN : Number(egfrText);
    return [
      ["egfr_contrast", contrast && !Number.isNaN(egfr) && egfr < EGFR_CONTRAST_LIMIT],
      ["allergy_contrast", contrast && form.elements.contrast_allergy.checked],
      ["pregnancy_radiation", pregnant && IONISING.includes(modality)],
      ["pregnancy_gadolinium", pregnant && modality === "MR" && contrast],
    ].filter(([, applies]) => applies).map(([code]) => code);
  }

  function warn(form) {
    const box = document.getElementById("contraindication-warnings");
    const title = document.getElementById("warnings-title").content.textContent;
    const codes = warnings(form);
    if (box.dataset.shown === codes.join(" ")) { return; }  // say it once, not at every key
    box.dataset.shown = codes.join(" ");
    box.replaceChildren();
    if (!codes.length) { return; }
    const heading = document.createElement("p");
    heading.innerHTML = "<strong></strong>";
    heading.firstChild.textContent = title;
    const list = document.createElement("ul");
    codes.forEach((code) => {
      const item = document.createElement("li");
      item.textContent = box.dataset[code];
      list.append(item);
    });
    box.append(heading, list);
  }

  document.querySelectorAll("[data-live-url][data-events-url]").forEach(live);
  const form = document.getElementById("request-form");
  if (form) {
    form.addEventListener("input", () => warn(form));
    form.addEventListener("change", () => warn(form));
    warn(form);
  }
  const problems = document.getElementById("problems");
  if (problems) { problems.focus(); }
})();
