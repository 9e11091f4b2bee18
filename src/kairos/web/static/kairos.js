// Kairos web UI: times in the viewer's zone, the CSRF token on every htmx request, live regions,
// and the jobs list's bulk selection.
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
    root.querySelectorAll("time[data-hover-local]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (!isNaN(when)) { el.title = when.toLocaleString(); }
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

  // Live regions: a [data-live="N"] element asks its hx-get for a fresh copy every N seconds
  // while the tab is visible (nothing while it is hidden; at once when it shows again). Polling,
  // not a server push: another replica may run the job, and the store sees every replica's runs.
  // An answer the same as the last one is not swapped in, so an idle page is left alone.
  var ticks = 0;
  var lastAnswer = new WeakMap();
  function refresh(all) {
    if (document.visibilityState !== "visible" || !window.htmx) { return; }
    ticks += 1;
    document.querySelectorAll("[data-live]").forEach(function (el) {
      var every = parseInt(el.getAttribute("data-live"), 10) || 1;
      if (all || ticks % every === 0) { window.htmx.trigger(el, "kairos:tick"); }
    });
  }
  window.setInterval(function () { refresh(false); }, 1000);
  document.addEventListener("visibilitychange", function () { refresh(true); });
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (!target || !target.hasAttribute("data-live") || !event.detail.shouldSwap) { return; }
    if (lastAnswer.get(target) === event.detail.serverResponse) {
      event.detail.shouldSwap = false;
    }
    lastAnswer.set(target, event.detail.serverResponse);
  });

  // Bulk actions: a box that ticks all the jobs shown, and one question naming how many.
  document.addEventListener("change", function (event) {
    var all = event.target.getAttribute && event.target.getAttribute("data-select-all");
    if (!all) { return; }
    document.querySelectorAll('input[type="checkbox"][name="' + all + '"]').forEach(function (box) {
      box.checked = event.target.checked;
    });
  });
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute || !form.hasAttribute("data-bulk")) { return; }
    var picked = document.querySelectorAll('input[name="ids"][form="' + form.id + '"]:checked');
    var button = event.submitter;
    if (!picked.length) {
      event.preventDefault();
      window.alert("Select the jobs first.");
      return;
    }
    var question = button && button.getAttribute("data-question");
    if (question && !window.confirm(question.replace("{n}", String(picked.length)))) {
      event.preventDefault();
    }
  });
})();
