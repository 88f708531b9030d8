// The payment result page finds out by itself: it polls our server (which hears the
// gateway's notify or asks the gateway) and reloads once the status changes.
(function () {
  "use strict";
  var box = document.querySelector("[data-poll-url]");
  if (!box) { return; }
  var url = box.getAttribute("data-poll-url");
  var shown = box.getAttribute("data-status");
  var every = parseInt(box.getAttribute("data-poll-ms"), 10) || 2000;
  var rounds = 0;
  function look() {
    rounds += 1;
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (answer) {
        if (answer && answer.status && answer.status !== shown) {
          window.location.reload();
          return;
        }
        if (rounds < 450) { window.setTimeout(look, every); }
      })
      .catch(function () { window.setTimeout(look, every * 2); });
  }
  window.setTimeout(look, every);
}());
