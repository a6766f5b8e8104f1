// The login page follows its login by itself: it counts down to the login's expiry and follows the login's
// event stream, loading the page again when the state changes. Its <script> element says what to follow:
// data-state is the state the page shows, data-events-url the URL of the stream, data-page-url the page's own
// URL; the countdown element (#countdown) carries the expiry as data-expires, in Unix milliseconds.
//
// The page may be the answer to a form (the email posted): it is loaded again by navigating to its own URL in
// place of this history entry, never by reload(), which would post the form again.
(function () {
  "use strict";
  var me = document.currentScript;
  var current = me.dataset.state;
  var events = me.dataset.eventsUrl;
  var page = me.dataset.pageUrl || location.href;
  var again = function () { location.replace(page); };
  var cd = document.getElementById("countdown");
  if (cd) {
    var end = Number(cd.dataset.expires);
    var tick = function () {
      var left = Math.max(0, Math.round((end - Date.now()) / 1000));
      cd.textContent = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
      if (left === 0) { again(); }
    };
    tick(); setInterval(tick, 1000);
  }
  if (!events) { return; }
  if (!window.EventSource) { setInterval(again, 2000); return; }
  // A stream the server refuses (too many open, or a failure on its side) is not retried by the browser.
  // Open it again later, waiting longer each time (5 s, 10 s, then every 20 s, a little jittered so refused
  // pages do not come back together), rather than reloading the page in a loop.
  var wait = 5000;
  var follow = function () {
    var es = new EventSource(events);
    es.addEventListener("state", function (e) { wait = 5000; if (e.data !== current) { es.close(); again(); } });
    es.addEventListener("reload", function () { es.close(); setTimeout(again, 1500); });
    es.addEventListener("error", function () {
      if (es.readyState !== 2) { return; }
      setTimeout(follow, wait * (0.8 + 0.4 * Math.random()));
      wait = Math.min(wait * 2, 20000);
    });
  };
  follow();
})();
