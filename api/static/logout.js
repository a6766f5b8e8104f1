// Single logout by the front channel: the page's hidden frames (iframe.slo) carry LogoutRequests to the other
// applications of the session. Once every frame has loaded, or after five seconds at most, the browser goes on
// to the continue link (#continue), which carries the LogoutResponse back to the application that asked.
//
// The page loads this script in its head, before the frames exist: a frame can finish loading before a script
// after it would run, so its load is caught here (load does not bubble, but it is seen on the way down).
(function () {
  "use strict";
  var loaded = 0, total = -1, gone = false;
  var go = function () {
    var next = document.getElementById("continue");
    if (gone || !next) { return; }
    gone = true;
    location.href = next.href;
  };
  var check = function () { if (total >= 0 && loaded >= total) { go(); } };
  document.addEventListener("load", function (e) {
    var f = e.target;
    if (f instanceof HTMLIFrameElement && f.classList.contains("slo")) { loaded++; check(); }
  }, true);
  document.addEventListener("DOMContentLoaded", function () {
    total = document.querySelectorAll("iframe.slo").length;
    check();
  });
  setTimeout(go, 5000);
})();
