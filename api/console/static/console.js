// Copy buttons of the admin console: data-copy names the element whose text is copied; data-copy-url a
// same-origin URL whose body is copied (the certificate PEM). The result is said in the nearest status line.
"use strict";
(function () {
  function say(button, text) {
    var section = button.closest("section") || document;
    var status = section.querySelector(".copied");
    if (status) { status.textContent = text; }
  }
  function copy(button, text) {
    if (!navigator.clipboard) { say(button, "Copying is not available here: select the text and copy it."); return; }
    navigator.clipboard.writeText(text).then(function () { say(button, "Copied."); },
      function () { say(button, "Could not copy: select the text and copy it."); });
  }
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest("button.copy");
    if (!b) { return; }
    if (b.dataset.copy) {
      var el = document.getElementById(b.dataset.copy);
      if (el) { copy(b, el.textContent.trim()); }
    } else if (b.dataset.copyUrl) {
      fetch(b.dataset.copyUrl, { credentials: "omit" }).then(function (r) { return r.text(); })
        .then(function (pem) { copy(b, pem); }, function () { say(b, "Could not fetch the certificate."); });
    }
  });
})();
