// mailroom keyboard shortcuts. Loaded (deferred, under the page CSP: no eval, no inline
// handlers) only for users who have shortcuts on; the server also marks <body data-shortcuts="on">.
// The page says what the keys act on with data attributes: [data-row] rows (queue list rows, the
// case thread's items), [data-open] a row's link, [data-select] its checkbox, [data-key-reply],
// [data-key-note], [data-key-assign], and the help <dialog id="keys-help"> with [data-key-close].
(function () {
  "use strict";
  if (document.body.dataset.shortcuts !== "on") return;

  // Other keyboard layouts (Russian, …) send other letters: fall back to the physical key.
  var byCode = { KeyJ: "j", KeyK: "k", KeyO: "o", KeyX: "x", KeyR: "r", KeyN: "n", KeyA: "a" };

  function typing(target) {
    if (!(target instanceof Element)) return false;
    return target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName);
  }

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-row]"));
  }

  function current() {
    return document.querySelector("[data-row].current");
  }

  function mark(row) {
    var old = current();
    if (old) {
      old.classList.remove("current");
      old.removeAttribute("aria-current");
    }
    row.classList.add("current");
    row.setAttribute("aria-current", "true");
    row.scrollIntoView({ block: "nearest" });
  }

  function move(step) {
    var all = rows();
    if (all.length === 0) return false;
    var at = all.indexOf(current());
    var next = at < 0 ? 0 : Math.min(Math.max(at + step, 0), all.length - 1);
    mark(all[next]);
    return true;
  }

  function inCurrent(selector) {
    var row = current();
    return row ? row.querySelector(selector) : null;
  }

  function follow(link) {
    if (!link) return false;
    link.click();
    return true;
  }

  function focus(selector) {
    var field = document.querySelector(selector);
    if (!field) return false;
    field.focus();
    return true;
  }

  var help = document.getElementById("keys-help");
  if (help) {
    help.addEventListener("click", function (event) {
      if (event.target instanceof Element && event.target.closest("[data-key-close]")) help.close();
    });
  }

  var actions = {
    j: function () { return move(1); },
    k: function () { return move(-1); },
    o: function () { return follow(inCurrent("[data-open]")); },
    Enter: function () { return follow(inCurrent("[data-open]")); },
    x: function () {
      var box = inCurrent("[data-select]");
      if (!box) return false;
      box.click();
      return true;
    },
    r: function () { return follow(document.querySelector("[data-key-reply]")); },
    n: function () { return focus("[data-key-note]"); },
    a: function () { return focus("[data-key-assign]"); },
    "?": function () {
      if (!help || help.open) return false;
      help.showModal();
      return true;
    }
  };

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(event.target) || (help && help.open)) return;
    var key = event.key === "Enter" || event.key === "?" ? event.key : (/^[a-z]$/.test(event.key) ? event.key : byCode[event.code]);
    // Shift only makes "?" (on most layouts); Enter on a focused link or button is the browser's.
    if (event.shiftKey && key !== "?") return;
    if (key === "Enter" && event.target instanceof Element && event.target.closest("a, button, summary, [tabindex]")) return;
    var action = key && actions[key];
    if (action && action()) event.preventDefault();
  });
})();
