// Progressive enhancement only: every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // An error summary takes the focus, so that a screen reader reads it first.
  var summary = document.getElementById("erreurs");
  if (summary) { summary.focus(); }
  // While a draft is written (up to a minute), say so and keep the button from a second click.
  var form = document.querySelector("form.redaction");
  if (form) {
    form.addEventListener("submit", function () {
      var waiting = document.getElementById("attente");
      if (waiting) { waiting.hidden = false; }
      var button = form.querySelector("button[type=submit]");
      if (button) { button.disabled = true; }
    });
  }
});
