// "Add another" rows of the intake form without a round trip; without JavaScript the button asks the server.
(function () {
  "use strict";
  document.querySelectorAll("[data-add-row]").forEach(function (button) {
    var group = button.getAttribute("data-add-row");
    var body = document.querySelector('tbody[data-rows="' + group + '"]');
    var template = document.querySelector('template[data-row-template="' + group + '"]');
    if (!body || !template) { return; }
    button.addEventListener("click", function (event) {
      event.preventDefault();
      var index = parseInt(body.getAttribute("data-next-index"), 10) || body.rows.length;
      var html = template.innerHTML.split("__i__").join(String(index));
      var holder = document.createElement("tbody");
      holder.innerHTML = html.trim();
      var row = holder.querySelector("tr");
      if (!row) { return; }
      var number = row.querySelector("[data-row-number]");
      if (number) { number.textContent = String(index + 1); }
      row.querySelectorAll("input[aria-label]").forEach(function (input) {
        input.setAttribute("aria-label", input.getAttribute("aria-label") + " " + (index + 1));
      });
      body.appendChild(row);
      body.setAttribute("data-next-index", String(index + 1));
      var first = row.querySelector("input");
      if (first) { first.focus(); }
    });
  });
  var summary = document.getElementById("error-summary");
  if (summary) { summary.focus(); }
})();
