/* JSON POSTs from the pages to the server: same-origin cookie, the page's CSRF token, the answer parsed whatever
   its status. Loaded by base.html before the pages' own scripts. */
(function () {
  "use strict";

  function post(url, body) {
    var meta = document.querySelector("meta[name=csrf-token]");
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json",
                 "X-CSRFToken": meta ? meta.content : "" },
      body: JSON.stringify(body || {})
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (json) {
        return { status: response.status, ok: response.ok, json: json };
      });
    });
  }

  window.KuratorJson = { post: post };
})();
