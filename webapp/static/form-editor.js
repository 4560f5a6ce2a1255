/* The forms editor: the form-js JSON on the left, a live preview drawn by the server on the right (the same
   template as the task page), drafts and deployment. */
(function () {
  "use strict";

  var root = document.getElementById("form-editor");
  var dataNode = document.getElementById("form-editor-data");
  if (!root || !dataNode) { return; }

  var state = JSON.parse(dataNode.textContent);
  var source = root.querySelector("textarea[name=schema]");
  var keyInput = root.querySelector("input[name=key]");
  var commentInput = root.querySelector("input[name=comment]");
  var preview = root.querySelector(".form-preview");
  var problemList = root.querySelector(".form-problems");
  var statusBox = root.querySelector(".modeler-status");
  var timer = null;
  var sequence = 0;
  var busy = false;
  var dirty = false;

  function status(text, kind) {
    statusBox.textContent = text || "";
    statusBox.className = "modeler-status" + (kind ? " " + kind : "");
  }

  function post(url, body) {
    return window.KuratorJson.post(url, body).then(function (response) {
      response.json = response.json || {};
      return response;
    });
  }

  function showProblems(problems) {
    problemList.textContent = "";
    problems.forEach(function (problem) {
      var item = document.createElement("li");
      item.className = "problem " + problem.severity;
      var head = document.createElement("span");
      head.className = "problem-severity";
      head.textContent = problem.severity === "error" ? "Ошибка" : "Предупреждение";
      item.appendChild(head);
      item.appendChild(document.createTextNode((problem.message_ru || problem.message) + (problem.element_id ? " (поле " + problem.element_id + ")" : "")));
      problemList.appendChild(item);
    });
  }

  function refresh() {
    var mine = ++sequence;
    return post(root.dataset.previewUrl, { schema: source.value }).then(function (response) {
      if (mine !== sequence) { return; }  // a newer edit is already on its way
      if (!response.ok) {
        showProblems([{ severity: "error", message: response.json.message || "Сервер ответил " + response.status }]);
        return;
      }
      showProblems(response.json.problems || []);
      if (response.json.html) {
        preview.innerHTML = response.json.html;  // rendered and escaped by the server's templates
        preview.classList.remove("stale");
      } else {
        preview.classList.add("stale");
      }
      root.classList.add("preview-ready");
    }).catch(function (error) {
      showProblems([{ severity: "error", message: "Предпросмотр недоступен: " + error }]);
    });
  }

  function scheduleRefresh() {
    dirty = true;
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(refresh, 350);
  }

  function guarded(action) {
    return function () {
      if (busy) { return; }
      busy = true;
      Promise.resolve().then(action).catch(function (error) {
        status("Не удалось выполнить действие: " + (error && error.message ? error.message : error), "error");
      }).then(function () { busy = false; });
    };
  }

  function currentKey() {
    var key = keyInput.value.trim();
    if (!/^[a-z][a-z0-9_]{1,99}$/.test(key)) {
      status("Укажите ключ формы: латинские строчные буквы, цифры и «_», начиная с буквы.", "error");
      keyInput.focus();
      return null;
    }
    return key;
  }

  var saveDraft = guarded(function () {
    var key = currentKey();
    if (!key) { return null; }
    status("Сохранение черновика…");
    return post(root.dataset.draftUrl, {
      kind: "form", content: source.value, key: key, note: commentInput.value.trim() || null,
      base_version: state.version, draft_id: state.draft_id, revision: state.revision
    }).then(function (response) {
      if (!response.ok) { status(response.json.message || "Сервер ответил " + response.status, "error"); return; }
      state.draft_id = response.json.id;
      state.revision = response.json.revision;
      dirty = false;
      status("Черновик сохранен (№ " + response.json.id + ").", "ok");
      var url = new URL(window.location.href);
      url.search = "";
      url.searchParams.set("draft", response.json.id);
      window.history.replaceState(null, "", url.toString());
    });
  });

  var deploy = guarded(function () {
    var key = currentKey();
    if (!key) { return null; }
    var comment = commentInput.value.trim();
    if (!comment && !window.confirm("Развернуть форму без комментария?")) { return null; }
    status("Развертывание…");
    return post(root.dataset.deployUrl, { key: key, schema: source.value, comment: comment,
                                          draft_id: state.draft_id }).then(function (response) {
      if (response.status === 422) {
        showProblems(response.json.problems || []);
        status("Форма не развернута: исправьте ошибки.", "error");
        return;
      }
      if (!response.ok) { status(response.json.message || "Сервер ответил " + response.status, "error"); return; }
      var created = (response.json.items || []).filter(function (i) { return i.created; });
      dirty = false;
      state.draft_id = null;
      status(created.length
        ? "Развернуто: " + created.map(function (i) {
            return (i.kind === "form" ? "форма " : "процесс ") + i.key + " версия " + i.version;
          }).join(", ") + "."
        : "Форма не изменилась: новая версия не нужна.", "ok");
      var form = created.filter(function (i) { return i.kind === "form"; })[0];
      if (form) {
        state.version = form.version;
        keyInput.readOnly = true;
        var url = new URL(window.location.href);
        url.search = "";
        url.searchParams.set("key", form.key);
        url.searchParams.set("version", form.version);
        window.history.replaceState(null, "", url.toString());
      }
    });
  });

  source.addEventListener("input", scheduleRefresh);
  root.querySelector("[data-action=draft]").addEventListener("click", saveDraft);
  root.querySelector("[data-action=deploy]").addEventListener("click", deploy);
  window.addEventListener("beforeunload", function (event) {
    if (dirty) { event.preventDefault(); event.returnValue = ""; }
  });
  refresh();
})();
