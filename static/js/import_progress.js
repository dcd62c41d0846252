/*
 * The import page's lower bar (templates/migration_files/import.html): while an import is
 * queued or importing, poll its progress URL and move the bar; reload the page once the
 * import has finished, so the page shows the result.
 *
 *   <section id="import" data-progress-url="…/imports/<id>/progress">
 *     <span data-import-label>…</span>
 *     <progress data-import-progress max="100" value="10"></progress>
 *     <p data-import-text data-text-importing="{done} of {total} documents imported"></p>
 *
 * The JSON: {state, label, done, total, percent, position, finished}.
 */
(function () {
  "use strict";

  var INTERVAL = 2000;

  function start(section) {
    var url = section.dataset.progressUrl;
    var bar = section.querySelector("[data-import-progress]");
    var label = section.querySelector("[data-import-label]");
    var text = section.querySelector("[data-import-text]");

    function render(data) {
      if (bar) {
        bar.max = 100;
        bar.value = data.percent;
        bar.textContent = data.percent + "%";
      }
      if (label && data.label) {
        label.textContent = data.label;
        label.dataset.state = data.state;
        label.className = "badge import-" + data.state;
      }
      if (text && data.state === "importing" && text.dataset.textImporting) {
        text.textContent = text.dataset.textImporting
          .replace("{done}", String(data.done))
          .replace("{total}", String(data.total));
      }
      if (data.state !== section.dataset.importState) {
        // queued → importing changes what the page says; a finished one shows its result
        if (data.finished || section.dataset.importState !== "queued") {
          window.location.reload();
          return false;
        }
        section.dataset.importState = data.state;
      }
      return !data.finished;
    }

    function tick() {
      fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" })
        .then(function (response) {
          return response.ok ? response.json() : null;
        })
        .then(function (data) {
          if (data === null || render(data) !== false) setTimeout(tick, INTERVAL);
        })
        .catch(function () {
          setTimeout(tick, INTERVAL); // a missed beat is fine; try again
        });
    }

    setTimeout(tick, INTERVAL);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var section = document.querySelector("#import[data-progress-url]");
    if (section) start(section);
  });
})();
