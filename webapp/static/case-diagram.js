/* The case file's process diagrams: each .case-diagram box fetches its BPMN and its state, draws the diagram with
   the bpmn-js viewer (static/vendor, see webapp/assets/build.sh) and marks the current and completed steps. */
(function () {
  "use strict";

  function fetchOk(url, as) {
    return fetch(url, { credentials: "same-origin", headers: { "Accept": as === "json" ? "application/json" : "application/xml" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status + " for " + url); }
        return as === "json" ? response.json() : response.text();
      });
  }

  function mark(viewer, state) {
    var canvas = viewer.get("canvas");
    var registry = viewer.get("elementRegistry");
    var active = new Set(state.active || []);
    (state.completed || []).forEach(function (id) {
      if (!active.has(id) && registry.get(id)) { canvas.addMarker(id, "kurator-done"); }
    });
    active.forEach(function (id) {
      if (registry.get(id)) { canvas.addMarker(id, "kurator-active"); }
    });
  }

  function fail(box, error) {
    box.classList.add("diagram-failed");
    box.textContent = "Схему не удалось показать. Обновите страницу; если ошибка повторится, сообщите администратору.";
    if (window.console) { console.error("case diagram:", error); }
  }

  /* Zoom buttons and drag-to-pan: the plain viewer has neither, and the case diagrams are wide. */
  function controls(box, viewer) {
    var canvas = viewer.get("canvas");
    var bar = document.createElement("div");
    bar.className = "diagram-tools";
    [["+", "Крупнее", function () { canvas.zoom(canvas.zoom() * 1.25, "auto"); }],
     ["\u2212", "Мельче", function () { canvas.zoom(canvas.zoom() / 1.25, "auto"); }],
     ["Вписать", "Показать схему целиком", function () { canvas.zoom("fit-viewport", "auto"); }]
    ].forEach(function (spec) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = spec[0];
      button.title = spec[1];
      button.setAttribute("aria-label", spec[1]);
      button.addEventListener("click", spec[2]);
      bar.appendChild(button);
    });
    box.parentNode.insertBefore(bar, box);

    var last = null;
    box.addEventListener("mousedown", function (event) {
      if (event.button === 0 && !event.target.closest("a")) { last = { x: event.clientX, y: event.clientY }; box.classList.add("panning"); }
    });
    window.addEventListener("mousemove", function (event) {
      if (!last) { return; }
      canvas.scroll({ dx: event.clientX - last.x, dy: event.clientY - last.y });
      last = { x: event.clientX, y: event.clientY };
    });
    window.addEventListener("mouseup", function () { last = null; box.classList.remove("panning"); });
  }

  function draw(box) {
    if (typeof window.BpmnJS !== "function") { fail(box, new Error("bpmn-js viewer is not loaded")); return; }
    var viewer = new window.BpmnJS({ container: box });
    Promise.all([fetchOk(box.dataset.bpmn, "xml"), fetchOk(box.dataset.state, "json")])
      .then(function (results) {
        return viewer.importXML(results[0]).then(function (imported) {
          if (imported.warnings && imported.warnings.length && window.console) {
            console.warn("case diagram: import warnings", imported.warnings);
          }
          mark(viewer, results[1]);
          viewer.get("canvas").zoom("fit-viewport", "auto");
          controls(box, viewer);
          box.classList.add("diagram-ready");
        });
      })
      .catch(function (error) { fail(box, error); });
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll(".case-diagram[data-bpmn][data-state]"), draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
