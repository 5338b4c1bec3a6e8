// The live worklist: the server says when the list changed (server-sent events); the page
// fetches the new rows. A new stroke alert sounds and shows a notification.
(function () {
  "use strict";
  const list = document.getElementById("worklist");
  const status = document.getElementById("live-status");
  if (!list) { return; }
  let known = new Set(Array.from(list.querySelectorAll("tr[data-exam-id]"), (r) => r.dataset.examId));

  function beep() {
    try {
      const audio = new AudioContext();
      const tone = audio.createOscillator();
      tone.frequency.value = 880;
      tone.connect(audio.destination);
      tone.start();
      tone.stop(audio.currentTime + 0.4);
    } catch (e) { /* no sound available */ }
  }

  async function refresh() {
    // A background request: it must not keep an unattended screen's session alive.
    const answer = await fetch(list.dataset.itemsUrl, {
      credentials: "same-origin", headers: { "X-Telerad-Background": "1" },
    });
    if (answer.status === 401) { window.location.href = "/signin"; return; }
    if (!answer.ok) { return; }
    list.innerHTML = await answer.text();
    const rows = Array.from(list.querySelectorAll("tr[data-exam-id]"));
    const strokes = rows.filter((r) => !known.has(r.dataset.examId) && r.dataset.urgency === "stroke_alert");
    if (strokes.length) {
      beep();
      if ("Notification" in window && Notification.permission === "granted") {
        new Notification(document.documentElement.lang === "fr" ? "Nouvelle alerte AVC" : "New stroke alert");
      }
    }
    known = new Set(rows.map((r) => r.dataset.examId));
  }

  const events = new EventSource(list.dataset.eventsUrl);
  events.addEventListener("worklist", refresh);
  events.addEventListener("signed_out", () => { window.location.href = "/signin"; });
  events.onopen = () => status.dataset.state = "live";
  events.onerror = () => status.dataset.state = "reconnecting";
  if ("Notification" in window && Notification.permission === "default") {
    document.addEventListener("click", () => Notification.requestPermission(), { once: true });
  }
})();
