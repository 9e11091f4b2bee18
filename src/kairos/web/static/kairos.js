// Kairos web UI: times in the viewer's zone, and the CSRF token on every htmx request.
(function () {
  "use strict";
  function localTimes(root) {
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (!isNaN(when)) {
        el.textContent = when.toLocaleString(undefined, {
          year: "numeric", month: "short", day: "numeric",
          hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
        });
      }
    });
    root.querySelectorAll("[data-viewer-zone]").forEach(function (el) {
      el.textContent = Intl.DateTimeFormat().resolvedOptions().timeZone;
    });
  }
  // The job form shows only the fields of the trigger kind chosen (all of them without scripts).
  function triggerFields() {
    var kind = document.getElementById("trigger_kind");
    if (!kind) { return; }
    document.querySelectorAll("[data-kind]").forEach(function (el) {
      el.hidden = el.getAttribute("data-kind") !== kind.value;
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    triggerFields();
    var kind = document.getElementById("trigger_kind");
    if (kind) { kind.addEventListener("change", triggerFields); }
  });
  // Forms that ask first (no inline handlers: the pages' Content-Security-Policy forbids them).
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });
  document.addEventListener("htmx:configRequest", function (event) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) { event.detail.headers["X-CSRF-Token"] = meta.content; }
  });
  document.addEventListener("htmx:afterSwap", function (event) { localTimes(event.target); });
})();
