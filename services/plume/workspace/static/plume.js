// Progressive enhancement only: every page works without this file.
"use strict";

// Server-Sent Events from a fetch answer: calls onEvent(name, data) for each event.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) { return; }
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) { name = line.slice(7); }
        else if (line.startsWith("data: ")) { data.push(line.slice(6)); }
      }
      if (data.length) { onEvent(name, JSON.parse(data.join("\n"))); }
    }
  }
}

// « Rédiger »: the text shown as it is written; any refusal falls back to the plain post,
// whose page says what is wrong.
function liveDrafting(form) {
  const waiting = document.getElementById("attente");
  const live = document.getElementById("direct");
  const text = document.getElementById("direct-texte");
  const button = form.querySelector("button[type=submit]");
  let fallback = false;
  form.addEventListener("submit", async function (event) {
    if (waiting) { waiting.hidden = false; }
    if (button) { button.disabled = true; }
    if (fallback || !form.dataset.flux || !window.fetch || !window.TextDecoder) { return; }
    event.preventDefault();
    let response;
    try {
      response = await fetch(form.dataset.flux, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        credentials: "same-origin",
      });
    } catch (error) {
      response = null;
    }
    const type = response ? response.headers.get("content-type") || "" : "";
    if (!response || !response.ok || !type.startsWith("text/event-stream")) {
      fallback = true;
      form.submit();
      return;
    }
    live.hidden = false;
    await readEvents(response, function (name, data) {
      if (name === "delta") { text.textContent += data.text; }
      else if (name === "draft") { window.location.assign("/app/brouillons/" + data.id); }
      else if (name === "error") {
        text.setAttribute("aria-busy", "false");
        if (waiting) { waiting.textContent = data.detail || "La rédaction a échoué."; }
        if (button) { button.disabled = false; }
      }
    });
  });
}

// A synthèse being written: its progress bar follows the job (every 2 s), and the page
// reloads once the job has ended, to show the draft or the failure.
function followProgress(section) {
  const bar = document.getElementById("barre-avancement");
  const said = document.getElementById("texte-avancement");
  async function poll() {
    let state = null;
    try {
      const response = await fetch(section.dataset.avancement, { credentials: "same-origin" });
      if (response.ok) { state = await response.json(); }
    } catch (error) {
      state = null;
    }
    if (state && state.status !== "processing") { window.location.reload(); return; }
    if (state && state.total > 0) {
      bar.max = state.total;
      bar.value = state.done;
      const text = "Partie " + state.done + " sur " + state.total;
      if (said.textContent !== text) { said.textContent = text; }
    }
    window.setTimeout(poll, 2000);
  }
  window.setTimeout(poll, 1000);
}

// A file over the size cap is said at once, next to its field, rather than after sending it.
function checkFileSize(input) {
  input.addEventListener("change", function () {
    const limit = Number(input.dataset.maxOctets);
    const file = input.files && input.files[0];
    const tooLarge = file && limit && file.size > limit;
    input.setCustomValidity(tooLarge ? "Le fichier dépasse 10 Mo." : "");
    if (tooLarge) { input.reportValidity(); }
  });
  // Before « Rédiger »'s own handler: a refused file neither sends nor waits.
  input.form.addEventListener("submit", function (event) {
    if (!input.checkValidity()) {
      event.preventDefault();
      event.stopImmediatePropagation();
      input.reportValidity();
    }
  });
}

document.addEventListener("DOMContentLoaded", function () {
  const section = document.querySelector("[data-avancement]");
  if (section) { followProgress(section); }
  // An error summary takes the focus, so that a screen reader reads it first.
  const summary = document.getElementById("erreurs");
  if (summary) { summary.focus(); }
  const file = document.querySelector("input[type=file][data-max-octets]");
  if (file) { checkFileSize(file); }
  const form = document.querySelector("form.redaction");
  if (form) { liveDrafting(form); }
});
