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

document.addEventListener("DOMContentLoaded", function () {
  // An error summary takes the focus, so that a screen reader reads it first.
  const summary = document.getElementById("erreurs");
  if (summary) { summary.focus(); }
  const form = document.querySelector("form.redaction");
  if (form) { liveDrafting(form); }
});
