// Kairos web UI: times in the viewer's zone, the CSRF token on every htmx request, live regions,
// the jobs list's bulk selection, and the details of a run chart's marks.
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
  document.addEventListener("htmx:afterSwap", function (event) {
    localTimes(event.target);
    markSwapped();
  });

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

  // The run chart: a mark's details on hover or focus, or on a first tap (a second opens its
  // run, as a click does). The details stay while the pointer moves onto them, for their link.
  var shownMark = null;
  var hideTimer = 0;
  var pointer = "mouse";
  function within(target, selector) { return target.closest ? target.closest(selector) : null; }
  function tipOf(mark) {
    var wrap = mark.closest(".chart-wrap");
    return wrap ? wrap.querySelector(".chart-tip") : null;
  }
  function tipLine(tip, tag, text) {
    var el = document.createElement(tag);
    el.textContent = text;
    tip.appendChild(el);
    return el;
  }
  function showMark(mark) {
    var tip = tipOf(mark);
    if (!tip) { return; }
    window.clearTimeout(hideTimer);
    if (shownMark && shownMark !== mark) { shownMark.classList.remove("active"); }
    shownMark = mark;
    mark.classList.add("active");
    var data = mark.dataset;
    var when = new Date(data.at);
    tip.textContent = "";
    tipLine(tip, "strong", "Run " + data.run + " · " + data.status);
    tipLine(tip, "div", isNaN(when) ? data.at : when.toLocaleString());
    tipLine(tip, "div", data.duration ? "Took " + data.duration : "No call made");
    tipLine(tip, "div", "Attempt " + data.attempt);
    tipLine(tip, "a", "Open run " + data.run).href = mark.getAttribute("href");
    tip.hidden = false;
    var wrap = tip.parentElement.getBoundingClientRect();
    var box = mark.getBoundingClientRect();
    var half = tip.offsetWidth / 2;
    var x = Math.min(Math.max(box.left + box.width / 2 - wrap.left, half), wrap.width - half);
    tip.style.left = x + "px";
    tip.style.top = (box.top - wrap.top) + "px";
  }
  function hideMark(delay) {
    window.clearTimeout(hideTimer);
    hideTimer = window.setTimeout(function () {
      if (!shownMark) { return; }
      var tip = tipOf(shownMark);
      if (tip) { tip.hidden = true; }
      shownMark.classList.remove("active");
      shownMark = null;
    }, delay);
  }
  // A live refresh draws the chart anew: the details shown stay shown, on the new drawing.
  function markSwapped() {
    if (!shownMark || document.contains(shownMark)) { return; }
    var again = document.querySelector('a.mark[data-run="' + shownMark.dataset.run + '"]');
    shownMark = null;
    if (again) { showMark(again); }
  }
  document.addEventListener("pointerover", function (event) {
    pointer = event.pointerType || "mouse";
    var mark = within(event.target, "a.mark");
    if (mark && pointer !== "touch") { showMark(mark); }
    if (within(event.target, ".chart-tip")) { window.clearTimeout(hideTimer); }
  });
  document.addEventListener("pointerout", function (event) {
    if (within(event.target, "a.mark") || within(event.target, ".chart-tip")) { hideMark(300); }
  });
  document.addEventListener("pointerdown", function (event) { pointer = event.pointerType; });
  document.addEventListener("focusin", function (event) {
    var mark = within(event.target, "a.mark");
    if (mark) { showMark(mark); }
  });
  document.addEventListener("focusout", function (event) {
    if (within(event.target, "a.mark")) { hideMark(300); }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && shownMark) { hideMark(0); }
  });
  document.addEventListener("click", function (event) {
    var mark = within(event.target, "a.mark");
    if (mark && pointer === "touch" && mark !== shownMark) {
      event.preventDefault();
      showMark(mark);
    } else if (!mark && !within(event.target, ".chart-tip") && shownMark) {
      hideMark(0);
    }
  });
})();
