/* The modeler page: the bpmn-js modeler with the Camunda properties panel (static/vendor/modeler, built by
   webapp/assets/modeler/build.sh), validation against the engine with the problems marked on the canvas,
   deployment of a new version, download and upload of .bpmn files. */
(function () {
  "use strict";

  var root = document.getElementById("modeler");
  var dataNode = document.getElementById("modeler-data");
  if (!root || !dataNode) { return; }

  var data = JSON.parse(dataNode.textContent);
  var canvasBox = root.querySelector(".modeler-canvas");
  var statusBox = root.querySelector(".modeler-status");
  var problemList = root.querySelector(".modeler-problem-list");
  var problemsEmpty = root.querySelector(".modeler-problems-empty");
  var commentInput = root.querySelector("input[name=comment]");
  var uploadInput = root.querySelector("input[name=upload]");
  var modeler = null;
  var marked = [];
  var dirty = false;
  var busy = false;

  var titleBox = root.querySelector(".modeler-title");
  var SEVERITY = { error: "Ошибка", warning: "Предупреждение" };

  function status(text, kind) {
    statusBox.textContent = text || "";
    statusBox.className = "modeler-status" + (kind ? " " + kind : "");
  }

  function fail(text, error) {
    status(text, "error");
    if (window.console && error) { console.error("modeler:", error); }
  }

  function title(main, note) {
    if (!titleBox) { return; }
    titleBox.textContent = main + " ";
    if (note) {
      var span = document.createElement("span");
      span.className = "muted";
      span.textContent = "(" + note + ")";
      titleBox.appendChild(span);
    }
  }

  function processName() {
    var definitions = modeler.getDefinitions && modeler.getDefinitions();
    var process = definitions && (definitions.rootElements || []).filter(function (e) {
      return e.$type === "bpmn:Process";
    })[0];
    return (process && process.name) || processId();
  }

  function clearMarkers() {
    var canvas = modeler.get("canvas");
    var registry = modeler.get("elementRegistry");
    marked.forEach(function (id) {
      if (registry.get(id)) {
        canvas.removeMarker(id, "kurator-problem-error");
        canvas.removeMarker(id, "kurator-problem-warning");
      }
    });
    marked = [];
  }

  function selectElement(id) {
    var element = modeler.get("elementRegistry").get(id);
    if (!element) { return false; }
    modeler.get("selection").select(element);
    if (element.waypoints || element.x !== undefined) {
      try { modeler.get("canvas").scrollToElement(element); } catch (e) { /* the root element cannot be scrolled to */ }
    }
    return true;
  }

  function showProblems(problems) {
    clearMarkers();
    problemList.textContent = "";
    var registry = modeler.get("elementRegistry");
    var canvas = modeler.get("canvas");
    problemsEmpty.textContent = problems.length ? "" : "Замечаний нет: схему можно развернуть.";
    problemsEmpty.hidden = !!problems.length;
    // a problem of a whole process is shown on the pool (participant) that holds it
    function shapeId(id) {
      if (!id || registry.get(id)) { return id; }
      var pool = registry.filter(function (e) {
        var bo = e.businessObject;
        return bo && bo.$type === "bpmn:Participant" && bo.processRef && bo.processRef.id === id;
      })[0];
      return pool ? pool.id : id;
    }
    problems.forEach(function (problem) {
      var item = document.createElement("li");
      item.className = "problem " + problem.severity;
      var head = document.createElement("span");
      head.className = "problem-severity";
      head.textContent = SEVERITY[problem.severity] || problem.severity;
      item.appendChild(head);
      var text = document.createElement("span");
      text.className = "problem-message";
      text.textContent = problem.message_ru || problem.message;
      item.appendChild(text);
      var targetId = shapeId(problem.element_id);
      var element = targetId ? registry.get(targetId) : null;
      if (problem.element_id) {
        var ref = document.createElement("button");
        ref.type = "button";
        ref.className = "link problem-element";
        ref.textContent = (element && element.businessObject && element.businessObject.name) || problem.element_id;
        ref.title = element ? "Выделить элемент " + problem.element_id : "Элемента " + problem.element_id + " нет на схеме";
        ref.disabled = !element;
        ref.addEventListener("click", function () { selectElement(targetId); });
        item.appendChild(ref);
      }
      if (problem.rule) {
        var rule = document.createElement("span");
        rule.className = "problem-rule muted";
        rule.textContent = problem.rule;
        rule.title = "Правило проверки bpmnlint";
        item.appendChild(rule);
      }
      if (element) {
        canvas.addMarker(targetId, "kurator-problem-" + (problem.severity === "error" ? "error" : "warning"));
        marked.push(targetId);
      }
      problemList.appendChild(item);
    });
  }

  var post = window.KuratorJson.post;

  function currentXml() {
    return modeler.saveXML({ format: true }).then(function (result) { return result.xml; });
  }

  function guarded(action) {
    return function () {
      if (busy) { return; }
      busy = true;
      root.classList.add("busy");
      Promise.resolve().then(action).catch(function (error) {
        fail("Не удалось выполнить действие: " + (error && error.message ? error.message : error), error);
      }).then(function () { busy = false; root.classList.remove("busy"); });
    };
  }

  function count(problems, severity) {
    return problems.filter(function (p) { return p.severity === severity; }).length;
  }

  var validate = guarded(function () {
    status("Проверка…");
    return currentXml().then(function (xml) {
      return post(root.dataset.validateUrl, { xml: xml });
    }).then(function (response) {
      if (!response.ok || !Array.isArray(response.json)) {
        throw new Error("сервер ответил " + response.status);
      }
      var problems = response.json;
      showProblems(problems);
      var errors = count(problems, "error");
      status(errors ? "Найдено ошибок: " + errors + ". Развернуть такую схему нельзя."
                    : "Ошибок нет" + (problems.length ? ", предупреждений: " + problems.length : "") + ".",
             errors ? "error" : "ok");
    });
  });

  var deploy = guarded(function () {
    var comment = commentInput.value.trim();
    if (!comment && !window.confirm("Развернуть новую версию без комментария?")) { return null; }
    status("Развертывание…");
    return currentXml().then(function (xml) {
      return post(root.dataset.deployUrl, { xml: xml, comment: comment, draft_id: data.draft_id });
    }).then(function (response) {
      var json = response.json || {};
      if (response.status === 422) {
        showProblems(json.problems || []);
        status("Схема не развернута: найдено ошибок " + count(json.problems || [], "error") + ".", "error");
        return;
      }
      if (!response.ok) { throw new Error(json.message || "сервер ответил " + response.status); }
      showProblems(json.warnings || []);
      var items = (json.items || []).filter(function (i) { return i.kind === "process"; });
      var created = items.filter(function (i) { return i.created; });
      var text = created.length
        ? "Развернуто: " + created.map(function (i) { return i.key + " версия " + i.version; }).join(", ") + "."
        : "Схема не изменилась: " + items.map(function (i) { return i.key + " версия " + i.version; }).join(", ")
          + " уже развернута.";
      dirty = false;
      commentInput.value = "";
      if (json.draft_deleted) { text += " Черновик № " + data.draft_id + " закрыт."; data.draft_id = null; }
      status(text, "ok");
      if (created.length === 1 && window.history && window.history.replaceState) {
        var url = new URL(window.location.href);
        url.searchParams.set("key", created[0].key);
        url.searchParams.set("version", created[0].version);
        window.history.replaceState(null, "", url.toString());
        data.key = created[0].key;
        data.version = created[0].version;
        title(processName(), created[0].key + ", версия " + created[0].version);
      }
    });
  });

  var saveDraft = guarded(function () {
    status("Сохранение черновика…");
    return currentXml().then(function (xml) {
      return post(root.dataset.draftUrl, {
        kind: "diagram", content: xml, note: commentInput.value.trim() || null, base_version: data.base_version,
        draft_id: data.draft_id, revision: data.revision
      });
    }).then(function (response) {
      var json = response.json || {};
      if (!response.ok) { throw new Error(json.message || "сервер ответил " + response.status); }
      data.draft_id = json.id;
      data.revision = json.revision;
      dirty = false;
      status("Черновик № " + json.id + " сохранен. Он виден другим методистам в списке моделера.", "ok");
      if (window.history && window.history.replaceState) {
        var url = new URL(window.location.href);
        url.search = "";
        url.searchParams.set("draft", json.id);
        window.history.replaceState(null, "", url.toString());
      }
    });
  });

  function processId() {
    var definitions = modeler.getDefinitions && modeler.getDefinitions();
    var process = definitions && (definitions.rootElements || []).filter(function (e) {
      return e.$type === "bpmn:Process";
    })[0];
    return (process && process.id) || data.key || "diagram";
  }

  var download = guarded(function () {
    return currentXml().then(function (xml) {
      var blob = new Blob([xml], { type: "application/xml;charset=utf-8" });
      var link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = processId() + ".bpmn";
      document.body.appendChild(link);
      link.click();
      setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 0);
    });
  });

  function load(xml, what) {
    return modeler.importXML(xml).then(function (result) {
      marked = [];
      showProblems([]);
      problemsEmpty.textContent = "Нажмите «Проверить», чтобы проверить схему так же, как при развертывании.";
      modeler.get("canvas").zoom("fit-viewport", "auto");
      if (result.warnings && result.warnings.length) {
        status(what + ": есть предупреждения разбора (" + result.warnings.length + "), см. консоль браузера.", "warning");
        if (window.console) { console.warn("modeler: import warnings", result.warnings); }
      } else if (what !== "Схема") {
        status(what + " загружена.", "ok");
      }
    });
  }

  function upload() {
    var file = uploadInput.files && uploadInput.files[0];
    if (!file) { return; }
    if (dirty && !window.confirm("Несохраненные изменения схемы будут потеряны. Загрузить файл?")) {
      uploadInput.value = "";
      return;
    }
    var reader = new FileReader();
    reader.onload = function () {
      load(String(reader.result), "Схема из файла " + file.name).then(function () {
        dirty = true;
        title(processName(), "из файла " + file.name + ", не развернута");
      }).catch(function (error) {
        fail("Файл " + file.name + " не читается как BPMN: " + (error && error.message ? error.message : error), error);
      });
      uploadInput.value = "";
    };
    reader.onerror = function () { fail("Не удалось прочитать файл " + file.name, reader.error); };
    reader.readAsText(file);
  }

  function start() {
    if (!window.KuratorModeler) { fail("Моделер не загрузился. Обновите страницу."); return; }
    modeler = window.KuratorModeler.create(canvasBox, root.querySelector(".modeler-properties"));
    window.kuratorModeler = modeler;  // the page's modeler, for browser tests and support sessions
    modeler.on("commandStack.changed", function (event) {
      if (event.trigger !== "clear") { dirty = true; }  // importing a diagram clears the stack
    });
    root.querySelector("[data-action=validate]").addEventListener("click", validate);
    root.querySelector("[data-action=deploy]").addEventListener("click", deploy);
    root.querySelector("[data-action=draft]").addEventListener("click", saveDraft);
    root.querySelector("[data-action=download]").addEventListener("click", download);
    root.querySelector("[data-action=fit]").addEventListener("click", function () {
      modeler.get("canvas").zoom("fit-viewport", "auto");
    });
    uploadInput.addEventListener("change", upload);
    window.addEventListener("beforeunload", function (event) {
      if (dirty) { event.preventDefault(); event.returnValue = ""; }
    });
    load(data.xml, "Схема").then(function () {
      root.classList.add("modeler-ready");
    }).catch(function (error) {
      fail("Схему не удалось открыть: " + (error && error.message ? error.message : error), error);
    });
  }

  start();
})();
