/* «Сравнение версий»: two read-only bpmn-js viewers (old left, new right) with the differences marked, zoom and
   scroll kept in step, and a list of changes that finds an element on both diagrams and shows what changed.
   The data (both XML files and the diff computed on the server) is embedded in the page as #diff-data. */
(function () {
  "use strict";

  var page = document.getElementById("diagram-diff");
  var source = document.getElementById("diff-data");
  if (!page || !source) { return; }
  var data = JSON.parse(source.textContent);
  var diff = data.diff;
  var GROUPS = ["added", "removed", "changed", "moved"];
  var STATUS = { added: "добавлено", removed: "удалено", changed: "изменено", moved: "перемещено" };
  var SIDES = { old: { removed: true, changed: true, moved: true }, "new": { added: true, changed: true, moved: true } };
  var CONTAINERS = { "bpmn:Participant": true, "bpmn:Lane": true };

  var items = {};                       // element id -> {group, item}
  var byMarker = { old: {}, "new": {} }; // diagram element id -> element id of the item it stands for
  GROUPS.forEach(function (group) {
    diff[group].forEach(function (item) {
      items[item.id] = { group: group, item: item };
      ["old", "new"].forEach(function (side) {
        var marker = item["marker_" + side];
        if (marker && (!byMarker[side][marker] || marker === item.id)) { byMarker[side][marker] = item.id; }
      });
    });
  });

  var panes = {};
  var syncBox = page.querySelector("[data-action=sync]");
  var syncing = false;

  function synced() { return !syncBox || syncBox.checked; }
  function other(side) { return side === "old" ? "new" : "old"; }
  function canvasOf(side) { return panes[side] && panes[side].viewer ? panes[side].viewer.get("canvas") : null; }

  /* Give the other diagram the same visible area (both boxes have the same size, so the same scale). */
  function follow(side) {
    var from = canvasOf(side), to = canvasOf(other(side));
    if (!synced() || syncing || !from || !to) { return; }
    var box = from.viewbox();
    syncing = true;
    try { to.viewbox({ x: box.x, y: box.y, width: box.width, height: box.height }); } finally { syncing = false; }
  }

  function element(side, id) {
    var pane = panes[side];
    return pane && pane.viewer && id ? pane.viewer.get("elementRegistry").get(id) : null;
  }

  function bounds(el) {
    if (el.waypoints) {
      var xs = el.waypoints.map(function (p) { return p.x; }), ys = el.waypoints.map(function (p) { return p.y; });
      var x = Math.min.apply(null, xs), y = Math.min.apply(null, ys);
      return { x: x, y: y, width: Math.max.apply(null, xs) - x, height: Math.max.apply(null, ys) - y };
    }
    return { x: el.x, y: el.y, width: el.width, height: el.height };
  }

  /* Show the element in the middle of the side's diagram, zoomed in enough to read it. */
  function centre(side, id) {
    var el = element(side, id), canvas = canvasOf(side);
    if (!el || !canvas) { return false; }
    if (canvas.findRoot) {
      var root = canvas.findRoot(el);
      if (root && root !== canvas.getRootElement()) { canvas.setRootElement(root); }
    }
    var box = bounds(el), view = canvas.viewbox(), outer = view.outer;
    var fits = Math.min(outer.width / (box.width + 160), outer.height / (box.height + 160));
    var scale = Math.min(Math.max(view.scale, 0.8), fits);
    var width = outer.width / scale, height = outer.height / scale;
    canvas.viewbox({ x: box.x + box.width / 2 - width / 2, y: box.y + box.height / 2 - height / 2,
                     width: width, height: height });
    return true;
  }

  function select(side, id) {
    var pane = panes[side];
    if (!pane || !pane.viewer) { return; }
    var el = element(side, id);
    pane.viewer.get("selection").select(el ? [el] : []);
  }

  function cell(tag, text, className) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text === null || text === undefined || text === "") {
      node.textContent = "—";
      node.classList.add("diff-none");
    } else {
      node.textContent = text;
    }
    return node;
  }

  function table(headers, rows) {
    var t = document.createElement("table");
    t.className = "list diff-table";
    var head = t.createTHead().insertRow();
    headers.forEach(function (h) { var th = document.createElement("th"); th.textContent = h; head.appendChild(th); });
    var body = t.createTBody();
    rows.forEach(function (row) {
      var tr = body.insertRow();
      row.forEach(function (value, index) { tr.appendChild(cell(index ? "td" : "th", value, index ? "diff-value" : "")); });
    });
    return t;
  }

  function paragraph(text, className) {
    var p = document.createElement("p");
    p.textContent = text;
    if (className) { p.className = className; }
    return p;
  }

  function details(entry) {
    var item = entry.item, group = entry.group;
    var body = page.querySelector(".diff-details-body");
    body.textContent = "";
    var title = document.createElement("h3");
    title.className = "diff-details-title";
    var badge = document.createElement("span");
    badge.className = "diff-status " + group;
    badge.textContent = STATUS[group];
    title.appendChild(badge);
    title.appendChild(document.createTextNode(" " + item.type_label + " «" + item.label + "»"));
    body.appendChild(title);
    body.appendChild(paragraph("Идентификатор: " + item.id, "muted small"));
    if (group === "changed") {
      body.appendChild(table(["Что", "Было (версия " + data.old.version + ")", "Стало (версия " + data["new"].version + ")"],
        item.changes.map(function (c) { return [c.what, c.old, c.new]; })));
      if (item.layout_changed) { body.appendChild(paragraph("Положение или размер на схеме тоже изменены.", "muted small")); }
    } else if (group === "moved") {
      body.appendChild(paragraph("Изменились только положение или размер на схеме; свойства элемента те же."));
    } else {
      body.appendChild(paragraph(group === "added" ? "Элемент появился в версии " + data["new"].version + "."
                                                   : "Элемента нет в версии " + data["new"].version + "."));
      if (item.properties && item.properties.length) {
        body.appendChild(table(["Свойство", "Значение"], item.properties.map(function (p) { return [p.what, p.value]; })));
      }
    }
    if (!item.marker_old && !item.marker_new) {
      body.appendChild(paragraph("Элемент не изображен на схеме (например, сообщение или сигнал).", "muted small"));
    }
  }

  function highlight(id) {
    Array.prototype.forEach.call(page.querySelectorAll(".diff-item"), function (button) {
      var on = button.dataset.id === id;
      button.classList.toggle("selected", on);
      button.setAttribute("aria-pressed", on ? "true" : "false");
      if (on && button.scrollIntoView) { button.scrollIntoView({ block: "nearest" }); }
    });
  }

  /* Select an item: mark it in the list, show its changes, select and centre it on both diagrams. */
  function show(id, centreIt) {
    var entry = items[id];
    if (!entry) { return; }
    highlight(id);
    details(entry);
    var item = entry.item;
    ["old", "new"].forEach(function (side) { select(side, item["marker_" + side]); });
    if (!centreIt) { return; }
    var wasSynced = synced();
    syncing = true;   // centre each side on its own copy of the element, then (if synced) align the other side
    var done = {};
    try {
      ["old", "new"].forEach(function (side) { done[side] = centre(side, item["marker_" + side]); });
    } finally { syncing = false; }
    if (wasSynced) {
      if (done["new"] && !done.old) { follow("new"); } else if (done.old && !done["new"]) { follow("old"); }
    }
  }

  function mark(side) {
    var viewer = panes[side].viewer;
    var canvas = viewer.get("canvas"), registry = viewer.get("elementRegistry"), overlays = viewer.get("overlays");
    GROUPS.forEach(function (group) {
      if (!SIDES[side][group]) { return; }
      diff[group].forEach(function (item) {
        var el = registry.get(item["marker_" + side]);
        if (!el) { return; }
        canvas.addMarker(el, "diff-" + group);
        var di = el.di || (el.businessObject && el.businessObject.di) || {};
        var container = CONTAINERS[el.type] || (el.type === "bpmn:SubProcess" && di.isExpanded);
        if (container) { canvas.addMarker(el, "diff-container"); return; }
        if (!el.waypoints && group !== "moved") {
          var badge = document.createElement("span");
          badge.className = "diff-badge " + group;
          badge.textContent = group === "added" ? "+" : group === "removed" ? "−" : "≠";
          badge.title = STATUS[group];
          overlays.add(el, "diff", { position: { top: -9, right: 9 }, html: badge });
        }
      });
    });
  }

  /* Drag to pan, wheel to scroll, Ctrl/⌘ + wheel to zoom around the pointer; the other side follows. */
  function navigation(side) {
    var box = panes[side].box, canvas = canvasOf(side), last = null;
    box.addEventListener("mousedown", function (event) {
      if (event.button !== 0) { return; }
      last = { x: event.clientX, y: event.clientY };
      box.classList.add("panning");
    });
    window.addEventListener("mousemove", function (event) {
      if (!last) { return; }
      canvas.scroll({ dx: event.clientX - last.x, dy: event.clientY - last.y });
      last = { x: event.clientX, y: event.clientY };
      follow(side);
    });
    window.addEventListener("mouseup", function () { last = null; box.classList.remove("panning"); });
    box.addEventListener("wheel", function (event) {
      event.preventDefault();
      var factor = event.deltaMode === 1 ? 20 : event.deltaMode === 2 ? 400 : 1;
      if (event.ctrlKey || event.metaKey) {
        var rect = box.getBoundingClientRect();
        var scale = Math.min(4, Math.max(0.1, canvas.zoom() * Math.exp(-event.deltaY * factor * 0.002)));
        canvas.zoom(scale, { x: event.clientX - rect.left, y: event.clientY - rect.top });
      } else {
        var dx = event.shiftKey ? event.deltaY : event.deltaX, dy = event.shiftKey ? 0 : event.deltaY;
        canvas.scroll({ dx: -dx * factor, dy: -dy * factor });
      }
      follow(side);
    }, { passive: false });
    panes[side].viewer.on("element.click", function (event) {
      var id = byMarker[side][event.element.id];
      if (id) { show(id, false); }
    });
  }

  function union(boxes) {
    boxes = boxes.filter(function (b) { return b && isFinite(b.x) && isFinite(b.y); });
    if (!boxes.length) { return null; }
    var x = Math.min.apply(null, boxes.map(function (b) { return b.x; }));
    var y = Math.min.apply(null, boxes.map(function (b) { return b.y; }));
    return { x: x, y: y,
             width: Math.max.apply(null, boxes.map(function (b) { return b.x + b.width; })) - x,
             height: Math.max.apply(null, boxes.map(function (b) { return b.y + b.height; })) - y };
  }

  /* Show the area on both diagrams (at one scale), with a margin, at most at 100 %. */
  function showArea(area, margin) {
    var sides = ["old", "new"].filter(canvasOf);
    if (!area || !sides.length) { return false; }
    var outer = canvasOf(sides[0]).viewbox().outer;
    var scale = Math.min(outer.width / (area.width + 2 * margin), outer.height / (area.height + 2 * margin), 1);
    var w = outer.width / scale, h = outer.height / scale;
    syncing = true;
    try {
      sides.forEach(function (side) {
        var canvas = canvasOf(side);
        var home = panes[side].home;   // back to the main plane after a drill-down into a sub-process
        if (home && home !== canvas.getRootElement()) { canvas.setRootElement(home); }
        canvas.viewbox({ x: area.x + area.width / 2 - w / 2, y: area.y + area.height / 2 - h / 2, width: w, height: h });
      });
    } finally { syncing = false; }
    return true;
  }

  /* Both diagrams at the same scale, showing everything either of them holds. */
  function fit() {
    var inner = ["old", "new"].map(canvasOf).filter(Boolean).map(function (c) {
      c.zoom("fit-viewport");
      return c.viewbox().inner;
    }).filter(function (b) { return b && b.width && b.height; });
    if (synced()) { showArea(union(inner), 20); }
  }

  /* Both diagrams around the marked elements (pools and lanes aside): where the changes are. */
  function focusChanges() {
    var boxes = [];
    ["old", "new"].forEach(function (side) {
      GROUPS.forEach(function (group) {
        if (!SIDES[side][group] || group === "moved") { return; }
        diff[group].forEach(function (item) {
          var el = element(side, item["marker_" + side]);
          var canvas = canvasOf(side);
          if (el && !CONTAINERS[el.type] && (!canvas.findRoot || canvas.findRoot(el) === panes[side].home)) {
            boxes.push(bounds(el));
          }
        });
      });
    });
    if (!showArea(union(boxes), 120)) { fit(); }
  }

  function zoom(factor) {
    ["old", "new"].forEach(function (side) {
      var canvas = canvasOf(side);
      if (canvas) { canvas.zoom(canvas.zoom() * factor, "auto"); }
    });
  }

  function fail(side, error) {
    var box = panes[side].box;
    box.classList.add("diagram-failed");
    box.textContent = "Схему не удалось показать: " + (error && error.message ? error.message : error) +
      ". Список изменений ниже остается верным.";
    if (window.console) { console.error("diagram diff:", error); }
  }

  function load(side) {
    var box = page.querySelector(".diff-canvas[data-side=" + side + "]");
    panes[side] = { box: box, viewer: null };
    if (typeof window.BpmnJS !== "function") { fail(side, new Error("просмотрщик bpmn-js не загружен")); return Promise.resolve(); }
    var viewer = new window.BpmnJS({ container: box });
    return viewer.importXML(data[side].xml).then(function (imported) {
      if (imported.warnings && imported.warnings.length && window.console) {
        console.warn("diagram diff: import warnings (" + side + ")", imported.warnings);
      }
      panes[side].viewer = viewer;
      panes[side].home = viewer.get("canvas").getRootElement();
      mark(side);
      navigation(side);
    }).catch(function (error) { fail(side, error); });
  }

  function controls() {
    var form = page.querySelector(".diff-versions");
    Array.prototype.forEach.call(form.querySelectorAll("select"), function (selectBox) {
      selectBox.addEventListener("change", function () {
        var meta = form.querySelector("[data-meta-for=" + selectBox.name + "]");
        if (meta) { meta.textContent = selectBox.selectedOptions[0].dataset.meta || ""; }
      });
    });
    form.querySelector("[data-action=swap]").addEventListener("click", function () {
      var from = form.elements.from, to = form.elements.to, value = from.value;
      from.value = to.value;
      to.value = value;
      form.submit();
    });
    Array.prototype.forEach.call(page.querySelectorAll(".diff-item"), function (button) {
      button.addEventListener("click", function () { show(button.dataset.id, true); });
    });
    page.querySelector("[data-action=fit]").addEventListener("click", fit);
    page.querySelector("[data-action=focus]").addEventListener("click", focusChanges);
    page.querySelector("[data-action=zoom-in]").addEventListener("click", function () { zoom(1.25); });
    page.querySelector("[data-action=zoom-out]").addEventListener("click", function () { zoom(1 / 1.25); });
    syncBox.addEventListener("change", function () { if (synced()) { follow("new"); } });
  }

  controls();
  Promise.all([load("old"), load("new")]).then(function () {
    focusChanges();
    window.kuratorDiff = { old: panes.old.viewer, "new": panes["new"].viewer, show: show };
    page.classList.add("diff-ready");
  });
})();
