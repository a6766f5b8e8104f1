// Submits at once the form its <script> element names by data-form: the HTTP-POST binding form that carries a
// SAML Response to the application (saml-bindings §3.5). Without scripts the form shows its button instead.
(function () {
  "use strict";
  var form = document.getElementById(document.currentScript.dataset.form);
  if (form) { form.submit(); }
})();
