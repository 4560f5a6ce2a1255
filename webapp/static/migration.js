/* «Перенос экземпляров»: the dry run and start on the selection page; on the batch page the browser steps the
   batch chunk by chunk (POST .../step) and shows the progress, then the results with revert buttons. */
(function () {
  "use strict";

  function post(url, body) {
    return window.KuratorJson.post(url, body).then(function (response) {
      var data = response.json || {};
      if (!response.ok) {
        var error = new Error(data.message || ("Ошибка " + response.status));
        error.status = response.status;
        throw error;
      }
      return data;
    });
  }

  function cell(row, text) {
    var td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function plural(n, one, few, many) {
    var m10 = n % 10, m100 = n % 100;
    if (m10 === 1 && m100 !== 11) { return one; }
    if (m10 >= 2 && m10 <= 4 && (m100 < 12 || m100 > 14)) { return few; }
    return many;
  }

  // -- the selection page ---------------------------------------------------------------------------------
  var page = document.getElementById("migration");
  if (page) {
    var form = page.querySelector(".migration-form");
    form.addEventListener("submit", function (event) { event.preventDefault(); });  // the buttons do the work
    var planButton = page.querySelector("[data-action=plan]");
    var startButton = page.querySelector("[data-action=start]");
    var status = page.querySelector(".migration-status");
    var report = page.querySelector(".migration-report");
    var lastSelection = null;

    var selection = function () {
      var versions = [];
      form.querySelectorAll("input[name=from_version]:checked").forEach(function (box) {
        versions.push(parseInt(box.value, 10));
      });
      var stage = form.querySelector("select[name=stage]").value;
      return {
        key: page.dataset.key,
        target_version: parseInt(form.querySelector("select[name=target_version]").value, 10),
        from_versions: versions,
        stages: stage ? [stage] : [],
        comment: form.querySelector("input[name=comment]").value
      };
    };

    var PAGE = 100;  // instances judged per request: a large dry run is a series of short requests
    var movableIds = [];

    var addRows = function (plan) {
      var body = report.querySelector("tbody");
      plan.instances.forEach(function (item) {
        var row = document.createElement("tr");
        row.className = item.movable ? "movable" : "blocked";
        cell(row, "№ " + item.instance_id);
        cell(row, item.business_key || "");
        cell(row, String(item.version));
        cell(row, item.stage.map(function (s) { return s.name; }).join(", ") || "ожидание события");
        var verdict = cell(row, "");
        var badge = document.createElement("span");
        badge.className = "badge " + (item.movable ? "green" : "red");
        badge.textContent = item.movable ? "можно" : "нельзя";
        verdict.appendChild(badge);
        if (!item.movable) {
          var why = document.createElement("div");
          why.className = "migration-reason";
          why.textContent = item.reasons.join("; ");
          verdict.appendChild(why);
        }
        cell(row, item.changes.join("; "));
        body.appendChild(row);
        if (item.movable) { movableIds.push(item.instance_id); }
      });
      report.hidden = false;
    };

    var totals = function (checked, selected, blocked, target, finished) {
      report.querySelector(".migration-totals").textContent = (finished ? "Отобрано " + selected
        : "Проверено " + checked + " из " + selected) + ": можно перенести " + movableIds.length + ", нельзя " +
        blocked + " (на версию " + target + ").";
    };

    var showStart = function () {
      startButton.disabled = movableIds.length === 0;
      startButton.textContent = "Перенести " + movableIds.length + " " +
        plural(movableIds.length, "экземпляр", "экземпляра", "экземпляров");
    };

    planButton.addEventListener("click", function () {
      lastSelection = selection();
      status.textContent = "Проверяю…";
      planButton.disabled = true;
      startButton.disabled = true;
      movableIds = [];
      report.querySelector("tbody").textContent = "";
      var checked = 0, blocked = 0;
      var next = function (afterId) {
        var body = Object.assign({}, lastSelection, { after_id: afterId, limit: PAGE });
        return post(page.dataset.planUrl, body).then(function (plan) {
          checked += plan.total;
          blocked += plan.blocked;
          addRows(plan);
          var finished = plan.next_after === null || plan.next_after === undefined;
          totals(checked, plan.selected, blocked, plan.target_version, finished);
          if (!finished) {
            status.textContent = "Проверяю… " + checked + " из " + plan.selected;
            return next(plan.next_after);
          }
          status.textContent = "";
          showStart();
          return null;
        });
      };
      next(null).catch(function (error) {
        status.textContent = error.message;
        movableIds = [];
      }).then(function () { planButton.disabled = false; });
    });

    form.addEventListener("change", function (event) {
      if (event.target.name === "comment") { return; }  // the comment is not part of the selection
      startButton.disabled = true;  // a changed selection needs a new dry run
    });

    startButton.addEventListener("click", function () {
      if (!lastSelection) { return; }
      var body = Object.assign({}, lastSelection, { comment: form.querySelector("input[name=comment]").value,
                                                    movable_ids: movableIds });
      startButton.disabled = true;
      status.textContent = "Запускаю перенос…";
      post(page.dataset.startUrl, body).then(function (result) {
        window.location.href = result.url;
      }).catch(function (error) {
        status.textContent = error.message;
      });
    });
  }

  // -- the batch page ---------------------------------------------------------------------------------------
  var batchPage = document.getElementById("migration-batch");
  if (batchPage) {
    var bar = batchPage.querySelector(".migration-bar");
    var progressBox = batchPage.querySelector(".migration-progress");
    var batchStatus = batchPage.querySelector(".migration-status");

    var update = function (progress) {
      ["done", "moved", "failed"].forEach(function (name) {
        batchPage.querySelector("[data-count=" + name + "]").textContent = progress[name];
      });
      bar.style.width = (progress.total ? (100 * progress.done / progress.total) : 100) + "%";
      progressBox.setAttribute("aria-valuenow", progress.done);
    };

    var step = function () {
      post(batchPage.dataset.stepUrl).then(function (progress) {
        update(progress);
        if (progress.status === "running") {
          step();
        } else {
          batchStatus.textContent = "Перенос завершен.";
          window.location.reload();
        }
      }).catch(function (error) {
        batchStatus.textContent = error.message + " Обновите страницу, чтобы продолжить.";
      });
    };

    if (batchPage.dataset.status === "running") {
      batchStatus.textContent = "Идет перенос…";
      step();
    }

    batchPage.addEventListener("click", function (event) {
      var button = event.target.closest("button[data-revert]");
      if (!button) { return; }
      button.disabled = true;
      post(batchPage.dataset.revertUrl + button.dataset.revert).then(function () {
        window.location.reload();
      }).catch(function (error) {
        var note = document.createElement("div");
        note.className = "migration-reason";
        note.textContent = error.message;
        button.parentNode.appendChild(note);
      });
    });
  }
})();
