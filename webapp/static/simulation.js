/* The simulation panel of the modeler: builds a scenario step by step and shows the run on the diagram.
   The server is stateless: every action sends the current diagram XML and the whole scenario to
   POST /modeler/simulate, which replays it in a throw-away engine. The selected step is shown on the canvas with
   markers (open tasks, completed elements, timers) and overlays with the due dates of open tasks. */
(function () {
  "use strict";

  var root = document.getElementById("simulation");
  if (!root) { return; }

  var startInput = root.querySelector("input[name=sim-start]");
  var tzInput = root.querySelector("input[name=sim-timezone]");
  var variablesInput = root.querySelector("textarea[name=sim-variables]");
  var dayInput = root.querySelector("input[name=sim-day]");
  var statusBox = root.querySelector(".sim-status");
  var stepList = root.querySelector(".sim-step-list");
  var stepsEmpty = root.querySelector(".sim-steps-empty");
  var problemList = root.querySelector(".sim-problems");
  var choiceList = root.querySelector(".sim-choice-list");
  var choicesEmpty = root.querySelector(".sim-choices-empty");
  var detailTitle = root.querySelector(".sim-detail-title");
  var detailBody = root.querySelector(".sim-detail-body");
  var undoButton = root.querySelector("[data-sim=undo]");
  var advanceButton = root.querySelector("[data-sim=advance]");
  var rerunButton = root.querySelector("[data-sim=rerun]");

  var MARKERS = ["sim-open", "sim-done", "sim-fired", "sim-waiting", "sim-error", "sim-flow"];
  var state = { steps: [], choices: {}, result: null, selected: null, busy: false };
  var marked = [];
  var variablesTouched = false;

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function defaultStart() {  // today by the engine clock (the page's data-today), 09:00
    if (/^\d{4}-\d{2}-\d{2}$/.test(root.dataset.today || "")) { return root.dataset.today + "T09:00"; }
    var now = new Date();
    return now.getFullYear() + "-" + pad(now.getMonth() + 1) + "-" + pad(now.getDate()) + "T09:00";
  }

  function defaultVariables() {
    var day = (startInput.value || defaultStart()).slice(0, 10);
    return JSON.stringify({ received: day, family_name: "Семья (симуляция)" }, null, 2);
  }

  function status(text, kind) {
    statusBox.textContent = text || "";
    statusBox.className = "sim-status" + (kind ? " " + kind : "");
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function modeler() { return window.kuratorModeler || null; }

  function post(body) {
    return window.KuratorJson.post(root.dataset.simulateUrl, body);
  }

  function scenario(steps) {
    var variables;
    var text = variablesInput.value.trim();
    try {
      variables = text ? JSON.parse(text) : {};
    } catch (e) {
      throw new Error("Переменные — не JSON: " + e.message);
    }
    var choices = {};
    Object.keys(state.choices).forEach(function (id) { if (state.choices[id]) { choices[id] = state.choices[id]; } });
    return { start: startInput.value, timezone: tzInput.value.trim() || "Europe/Moscow", variables: variables,
             choices: choices, steps: steps };
  }

  /* Run the scenario with `steps`; keep them only if the server accepted the scenario. */
  function run(steps, what) {
    var m = modeler();
    if (!m) { status("Моделер еще не загрузился.", "error"); return Promise.resolve(); }
    if (state.busy) { return Promise.resolve(); }
    var body;
    try {
      body = { scenario: scenario(steps) };
    } catch (e) {
      status(e.message, "error");
      variablesInput.classList.add("sim-invalid");
      return Promise.resolve();
    }
    variablesInput.classList.remove("sim-invalid");
    startInput.classList.remove("sim-invalid");
    state.busy = true;
    root.classList.add("busy");
    status((what || "Симуляция") + "…");
    return m.saveXML({ format: true }).then(function (saved) {
      body.xml = saved.xml;
      return post(body);
    }).then(function (response) {
      var json = response.json || {};
      if (!response.ok) {
        var field = json.field || "";
        if (field.indexOf("scenario.variables") === 0) { variablesInput.classList.add("sim-invalid"); }
        if (field.indexOf("scenario.start") === 0) { startInput.classList.add("sim-invalid"); }
        status("Сценарий не принят" + (field ? " (" + field + ")" : "") + ": " + (json.message || response.status),
               "error");
        return;
      }
      state.result = json;
      var last = json.steps && json.steps.length ? json.steps[json.steps.length - 1] : null;
      // a failing new step is shown, but not kept: the next action continues from the last good state
      if (last && last.error && steps.length && last.index === steps.length) {
        state.steps = steps.slice(0, -1);
      } else {
        state.steps = steps;
      }
      state.selected = last ? last.index : null;
      render();
      if (json.problems && json.problems.some(function (p) { return p.severity === "error"; })) {
        status("Схема не прошла проверку: симуляция невозможна.", "error");
      } else if (last && last.error) {
        status("Шаг не выполнен: " + last.error.message, "error");
      } else if (last && last.ended) {
        status("Процесс завершен. " + last.action, "ok");
      } else {
        status(last ? last.action : "", "ok");
      }
    }).catch(function (error) {
      status("Не удалось выполнить симуляцию: " + (error && error.message ? error.message : error), "error");
    }).then(function () {
      state.busy = false;
      root.classList.remove("busy");
    });
  }

  // -- rendering -------------------------------------------------------------------------------------------------

  function render() {
    var result = state.result || {};
    renderChoices(result.gateways || []);
    renderProblems(result.problems || []);
    stepList.textContent = "";
    var steps = result.steps || [];
    stepsEmpty.hidden = steps.length > 0;
    steps.forEach(function (step) {
      var item = el("li", "sim-step" + (step.error ? " error" : "") + (step.index === state.selected ? " selected" : ""));
      item.appendChild(el("span", "sim-step-index", step.index + "."));
      var button = el("button", "link sim-step-button");
      button.type = "button";
      button.textContent = step.action;
      button.setAttribute("aria-pressed", step.index === state.selected ? "true" : "false");
      button.addEventListener("click", function () { state.selected = step.index; render(); });
      item.appendChild(button);
      var notes = [];
      if (step.opened.length) { notes.push("открыто: " + step.opened.length); }
      if (step.closed.length) { notes.push("закрыто: " + step.closed.length); }
      if (step.timers_fired.length) { notes.push("таймеров сработало: " + step.timers_fired.length); }
      if (step.ended) { notes.push("процесс завершен"); }
      if (step.error) { notes.push("ошибка"); }
      if (notes.length) { item.appendChild(el("span", "muted small sim-step-note", " — " + notes.join(", "))); }
      stepList.appendChild(item);
    });
    var current = steps.filter(function (s) { return s.index === state.selected; })[0] || null;
    var last = steps.length ? steps[steps.length - 1] : null;
    renderDetail(current, current === last);
    showOnDiagram(current);
    undoButton.disabled = !state.steps.length;
    rerunButton.disabled = !state.result;
    advanceButton.disabled = !last || !!(last.error && last.index === 0);
  }

  function renderChoices(gateways) {
    choiceList.textContent = "";
    choicesEmpty.hidden = gateways.length > 0;
    if (!gateways.length && state.result) { choicesEmpty.textContent = "На схеме нет шлюзов с выбором пути."; }
    gateways.forEach(function (gateway) {
      var label = el("label", "sim-choice");
      label.appendChild(el("span", "sim-choice-name", gateway.name || gateway.id));
      var select = el("select");
      select.name = "choice-" + gateway.id;
      select.dataset.gateway = gateway.id;
      var auto = el("option", null, "по данным");
      auto.value = "";
      select.appendChild(auto);
      gateway.flows.forEach(function (flow) {
        var option = el("option", null, (flow.name || "→ " + flow.target_name) + (flow.default ? " (по умолчанию)" : ""));
        option.value = flow.id;
        option.title = flow.condition ? "Условие: " + flow.condition : (flow.default ? "Поток по умолчанию" : "Без условия");
        select.appendChild(option);
      });
      select.value = state.choices[gateway.id] || "";
      select.addEventListener("change", function () {
        state.choices[gateway.id] = select.value;
        run(state.steps.slice(), "Пересчет с выбранным путем");
      });
      label.appendChild(select);
      choiceList.appendChild(label);
    });
  }

  function renderProblems(problems) {
    problemList.textContent = "";
    problems.forEach(function (problem) {
      var item = el("li", "problem " + problem.severity,
                    (problem.severity === "error" ? "Ошибка: " : "Предупреждение: ") + (problem.message_ru || problem.message)
                    + (problem.element_id ? " [" + problem.element_id + "]" : ""));
      problemList.appendChild(item);
    });
  }

  function roleText(task) {
    var parts = (task.role_titles || []).slice();
    (task.candidate_users || []).forEach(function (u) { parts.push(u); });
    return parts.join(", ") || "—";
  }

  function renderDetail(step, isLast) {
    detailBody.textContent = "";
    if (!step) { detailTitle.textContent = "Состояние шага"; return; }
    detailTitle.textContent = "Шаг " + step.index + ": " + step.action;
    detailBody.appendChild(el("p", "muted small", "Время: " + step.at_text + " (день " + step.day + ")"));
    if (step.error) {
      var error = el("p", "sim-error-text", step.error.message);
      if (step.error.element_id) { error.appendChild(el("span", "muted", " [" + step.error.element_id + "]")); }
      detailBody.appendChild(error);
    }
    if (step.filled && Object.keys(step.filled).length) {
      detailBody.appendChild(el("p", "small", "Обязательные поля заполнены значениями по умолчанию: "
                                              + Object.keys(step.filled).join(", ")));
    }
    var openedIds = {};
    step.opened.forEach(function (t) { openedIds[t.task_id] = true; });
    if (step.open.length) {
      var table = el("table", "sim-tasks");
      var head = el("tr");
      ["Задача", "Роль", "Исполнитель", "Срок", ""].forEach(function (h) { head.appendChild(el("th", null, h)); });
      var thead = el("thead");
      thead.appendChild(head);
      table.appendChild(thead);
      var tbody = el("tbody");
      step.open.forEach(function (task) {
        var row = el("tr", (task.overdue ? "overdue" : "") + (openedIds[task.task_id] ? " new" : ""));
        var nameCell = el("td");
        nameCell.appendChild(el("span", "sim-task-name", task.name));
        if (openedIds[task.task_id]) { nameCell.appendChild(el("span", "sim-badge", "новая")); }
        if (task.path && task.path.length) { nameCell.appendChild(el("div", "muted small", "в " + task.path.join(" › "))); }
        row.appendChild(nameCell);
        row.appendChild(el("td", null, roleText(task)));
        row.appendChild(el("td", null, task.assignee || "—"));
        var due = el("td", "sim-due-cell", task.due_text);
        if (task.overdue) { due.appendChild(el("span", "sim-badge overdue", "просрочена")); }
        row.appendChild(due);
        var action = el("td", "sim-action");
        if (isLast && !step.error) { action.appendChild(completeControl(task)); }
        row.appendChild(action);
        tbody.appendChild(row);
      });
      table.appendChild(tbody);
      detailBody.appendChild(table);
    } else {
      detailBody.appendChild(el("p", "muted", step.ended ? "Процесс завершен: открытых задач нет." : "Открытых задач нет."));
    }
    if (step.closed.length) {
      detailBody.appendChild(el("p", "small", "Закрыты на этом шаге: " + step.closed.map(function (t) {
        return "«" + t.name + "»" + (t.status === "cancelled" ? " (отменена)" : "");
      }).join(", ")));
    }
    if (step.timers_fired.length) {
      detailBody.appendChild(el("p", "small sim-fired-text", "Сработали таймеры: " + step.timers_fired.map(function (t) {
        return "«" + t.name + "» (" + t.at_text + ")";
      }).join(", ")));
    }
    if (step.timers_waiting.length) {
      detailBody.appendChild(el("p", "small", "Ожидают таймеры: " + step.timers_waiting.map(function (t) {
        return "«" + t.name + "» до " + t.at_text;
      }).join(", ")));
    }
  }

  function completeControl(task) {
    var box = el("div", "sim-complete");
    var details = el("details");
    details.appendChild(el("summary", null, "Данные формы"));
    var area = el("textarea", "sim-data");
    area.rows = 6;
    area.spellcheck = false;
    area.setAttribute("aria-label", "Данные формы задачи «" + task.name + "» (JSON)");
    area.value = JSON.stringify(task.defaults || {}, null, 2);
    details.appendChild(area);
    var button = el("button", "primary sim-complete-button", "Выполнить");
    button.type = "button";
    button.dataset.element = task.element_id;
    button.addEventListener("click", function () {
      var data;
      try {
        data = JSON.parse(area.value.trim() || "{}");
      } catch (e) {
        details.open = true;
        area.classList.add("sim-invalid");
        status("Данные формы «" + task.name + "» — не JSON: " + e.message, "error");
        return;
      }
      run(state.steps.concat([{ complete: task.element_id, data: data }]), "Выполнение задачи «" + task.name + "»");
    });
    box.appendChild(button);
    box.appendChild(details);
    return box;
  }

  // -- the diagram -----------------------------------------------------------------------------------------------

  function clearDiagram() {
    var m = modeler();
    if (!m) { return; }
    var canvas = m.get("canvas");
    var registry = m.get("elementRegistry");
    marked.forEach(function (id) {
      if (registry.get(id)) { MARKERS.forEach(function (cls) { canvas.removeMarker(id, cls); }); }
    });
    marked = [];
    m.get("overlays").remove({ type: "kurator-sim" });
  }

  /* The element that shows a task: itself, else the innermost call activity or subprocess on this diagram. */
  function shownElement(registry, elementId, path) {
    if (registry.get(elementId)) { return elementId; }
    var chain = (path || []).slice().reverse();
    for (var i = 0; i < chain.length; i++) {
      if (registry.get(chain[i])) { return chain[i]; }
    }
    return null;
  }

  function mark(canvas, id, cls) {
    canvas.addMarker(id, cls);
    marked.push(id);
  }

  function showOnDiagram(step) {
    clearDiagram();
    var m = modeler();
    if (!m || !step) { return; }
    var canvas = m.get("canvas");
    var registry = m.get("elementRegistry");
    var overlays = m.get("overlays");
    var done = {};
    var active = {};
    step.completed_elements.forEach(function (id) {
      done[id] = true;
      if (registry.get(id)) { mark(canvas, id, "sim-done"); }
    });
    var badges = {};
    function badge(id, text, cls) {
      (badges[id] = badges[id] || []).push({ text: text, cls: cls });
    }
    step.open.forEach(function (task) {
      var id = shownElement(registry, task.element_id, task.path);
      if (!id) { return; }
      active[id] = true;
      canvas.removeMarker(id, "sim-done");
      mark(canvas, id, "sim-open");
      var text = (id !== task.element_id ? task.name + ": " : "") + "до " + task.due_text;
      badge(id, text, task.overdue ? "overdue" : "");
    });
    step.timers_waiting.forEach(function (timer) {
      var id = shownElement(registry, timer.element_id, timer.path);
      if (!id) { return; }
      active[id] = true;
      mark(canvas, id, "sim-waiting");
      badge(id, "таймер: " + timer.at_text, "timer");
    });
    step.timers_fired.forEach(function (timer) {
      var id = shownElement(registry, timer.element_id, timer.path);
      if (!id) { return; }
      mark(canvas, id, "sim-fired");
      badge(id, "сработал " + timer.at_text, "fired");
    });
    if (step.error && step.error.element_id && registry.get(step.error.element_id)) {
      mark(canvas, step.error.element_id, "sim-error");
      badge(step.error.element_id, "ошибка", "error");
    }
    registry.filter(function (element) { return !!element.waypoints; }).forEach(function (connection) {
      var source = connection.source && connection.source.id;
      var target = connection.target && connection.target.id;
      if (done[source] && (done[target] || active[target])) { mark(canvas, connection.id, "sim-flow"); }
    });
    Object.keys(badges).forEach(function (id) {
      var box = el("div", "sim-overlay");
      badges[id].forEach(function (b) { box.appendChild(el("div", "sim-due " + b.cls, b.text)); });
      var element = registry.get(id);
      var isEvent = !!(element && element.type && element.type.indexOf("Event") >= 0);
      // events: below the circle (their label is there too, so further down); tasks: above the box
      var position = isEvent ? { top: 58, left: -40 } : { top: -6 - 20 * badges[id].length, left: 0 };
      overlays.add(id, "kurator-sim", { position: position, html: box, scale: { min: 1 } });
    });
  }

  // -- actions ---------------------------------------------------------------------------------------------------

  function restart() {
    state.steps = [];
    run([], "Старт");
  }

  function undo() {
    if (!state.steps.length) { return; }
    run(state.steps.slice(0, -1), "Отмена шага");
  }

  function advance() {
    var day = parseInt(dayInput.value, 10);
    if (isNaN(day) || day < 0) {
      status("Укажите номер дня: целое число от 0 (день старта).", "error");
      dayInput.classList.add("sim-invalid");
      return;
    }
    dayInput.classList.remove("sim-invalid");
    run(state.steps.concat([{ advance: { day: day } }]), "Перевод часов на день " + day);
  }

  startInput.value = defaultStart();
  variablesInput.value = defaultVariables();
  variablesInput.addEventListener("input", function () { variablesTouched = true; });
  startInput.addEventListener("change", function () {
    if (!variablesTouched) { variablesInput.value = defaultVariables(); }
  });
  root.querySelector("[data-sim=restart]").addEventListener("click", restart);
  undoButton.addEventListener("click", undo);
  rerunButton.addEventListener("click", function () { run(state.steps.slice(), "Пересчет по текущей схеме"); });
  advanceButton.addEventListener("click", advance);
  window.kuratorSimulation = { state: state, run: run };  // for the browser tests and the console
})();
