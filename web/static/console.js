// Bulwark admin console: progressive enhancement only. Every page works
// without this file; it adds "Copy" buttons next to one-time secrets.
(function () {
  "use strict";
  function status(text) {
    var el = document.getElementById("copy-status");
    if (el) { el.textContent = text; }
  }
  function copy(input, button) {
    input.focus();
    input.select();
    var done = function () {
      button.textContent = "Copied";
      status("Copied to the clipboard.");
      setTimeout(function () { button.textContent = "Copy"; }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, function () {
        status("Copy failed: select the text and copy it by hand.");
      });
    } else if (document.execCommand && document.execCommand("copy")) {
      done();
    } else {
      status("Select the text and copy it by hand.");
    }
  }
  document.addEventListener("DOMContentLoaded", function () {
    var buttons = document.querySelectorAll("button[data-copy]");
    Array.prototype.forEach.call(buttons, function (b) {
      var input = document.getElementById(b.getAttribute("data-copy"));
      if (!input) { return; }
      b.hidden = false;
      b.addEventListener("click", function () { copy(input, b); });
    });
    var secrets = document.querySelectorAll("input[data-secret]");
    Array.prototype.forEach.call(secrets, function (i) {
      i.addEventListener("focus", function () { i.select(); });
    });
  });
})();
