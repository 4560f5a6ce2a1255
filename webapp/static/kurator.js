/* Behaviour every page shares, bound here because the Content-Security-Policy allows no inline handlers:
   a form with `data-confirm="question"` is submitted only after the user confirms the question. */
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form instanceof HTMLFormElement ? form.getAttribute("data-confirm") : null;
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });
})();
