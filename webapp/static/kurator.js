/* Behaviour every page shares, bound here because the Content-Security-Policy allows no inline handlers:
   a form with `data-confirm="question"` is submitted only after the user confirms the question; a menu of the top
   bar (`details.menu`) closes when the user clicks elsewhere or presses Escape. */
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form instanceof HTMLFormElement ? form.getAttribute("data-confirm") : null;
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  function closeMenus(except) {
    document.querySelectorAll(".topbar details.menu[open]").forEach(function (menu) {
      if (menu !== except) {
        menu.removeAttribute("open");
      }
    });
  }

  document.addEventListener("click", function (event) {
    closeMenus(event.target instanceof Element ? event.target.closest("details.menu") : null);
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      closeMenus(null);
    }
  });
})();
