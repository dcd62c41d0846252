/*
 * Resumable upload of a large file over tus 1.0 (the server lives at /uploads/), with
 * tus-js-client (static/vendor/tus-js-client-4.3.1/tus.min.js, loaded before this file).
 *
 * Markup contract (templates/uploads/_upload_form.html renders it):
 *
 *   <form method="post" action="<the page that takes the token>"
 *         data-tus-upload
 *         data-endpoint="/uploads/"              the tus creation URL
 *         data-csrf="<csrf token>"               sent as X-CSRFToken on every request
 *         data-text-progress="{done} of {total}" {done} and {total} are filled in
 *         data-text-resuming="…"                 shown when a previous upload continues
 *         data-text-done="…"                     shown when every byte has arrived
 *         data-text-error="…"                    shown when the upload stops
 *         data-text-choose="…">                  shown when submitted without a file
 *     <input type="file" data-tus-file>          no name: the file itself is never posted
 *     <progress data-tus-progress max="100" value="0"></progress>   (or any element:
 *                                                its style.width is set in percent)
 *     <p data-tus-status role="status"></p>
 *     <input type="hidden" name="upload_token" data-tus-token>
 *     <button type="submit" data-tus-start>…</button>
 *   </form>
 *
 * Choosing a file (or submitting) starts the upload in chunks of 8 MiB; a reload of the
 * page continues an unfinished upload of the same file where it stopped. When the last
 * byte is in, the token (the last part of the upload's URL) goes into upload_token and
 * the form is submitted. Without tus support the status says so and nothing is sent.
 */
(function () {
  "use strict";

  var CHUNK_SIZE = 8 * 1024 * 1024;
  var RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000];

  function formatBytes(bytes, lang) {
    var units = ["B", "kB", "MB", "GB", "TB"];
    var value = bytes;
    var unit = 0;
    while (value >= 1000 && unit < units.length - 1) {
      value /= 1000;
      unit += 1;
    }
    var digits = unit === 0 ? 0 : 1;
    var number = new Intl.NumberFormat(lang || undefined, {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    }).format(value);
    return number + " " + units[unit];
  }

  function enhance(form) {
    var fileInput = form.querySelector("[data-tus-file]");
    var bar = form.querySelector("[data-tus-progress]");
    var status = form.querySelector("[data-tus-status]");
    var tokenInput = form.querySelector("[data-tus-token]");
    var startButton = form.querySelector("[data-tus-start]");
    var lang = document.documentElement.lang || "nl";
    var text = form.dataset;
    var running = null;

    function say(message) {
      if (status) status.textContent = message || "";
    }

    function show(done, total) {
      var percent = total > 0 ? (done / total) * 100 : 100;
      if (bar) {
        if (bar.tagName === "PROGRESS") {
          bar.max = 100;
          bar.value = percent;
        } else {
          bar.style.width = percent.toFixed(1) + "%";
        }
      }
      say(
        (text.textProgress || "{done} / {total}")
          .replace("{done}", formatBytes(done, lang))
          .replace("{total}", formatBytes(total, lang))
      );
    }

    function busy(on) {
      if (startButton) startButton.disabled = on;
      if (fileInput) fileInput.disabled = on;
      form.setAttribute("aria-busy", on ? "true" : "false");
    }

    function start() {
      if (running) return;
      var file = fileInput && fileInput.files && fileInput.files[0];
      if (!file) {
        say(text.textChoose || "");
        return;
      }
      if (!window.tus || !window.tus.isSupported) {
        say(text.textError || "");
        return;
      }
      var upload = new window.tus.Upload(file, {
        endpoint: form.dataset.endpoint || "/uploads/",
        chunkSize: CHUNK_SIZE,
        retryDelays: RETRY_DELAYS,
        headers: { "X-CSRFToken": form.dataset.csrf || "" },
        metadata: { filename: file.name, filetype: file.type || "application/octet-stream" },
        removeFingerprintOnSuccess: true,
        onProgress: function (sent, total) {
          show(sent, total);
        },
        onError: function () {
          running = null;
          busy(false);
          say(text.textError || "");
        },
        onSuccess: function () {
          var token = upload.url ? upload.url.split("/").pop() : "";
          show(file.size, file.size);
          say(text.textDone || "");
          if (tokenInput) tokenInput.value = token;
          form.dataset.tusComplete = "true";
          form.submit();
        },
      });
      running = upload;
      busy(true);
      show(0, file.size);
      upload.findPreviousUploads().then(function (previous) {
        if (previous.length) {
          previous.sort(function (a, b) {
            return a.creationTime < b.creationTime ? 1 : -1;
          });
          upload.resumeFromPreviousUpload(previous[0]);
          say(text.textResuming || "");
        }
        upload.start();
      });
    }

    if (fileInput) fileInput.addEventListener("change", start);
    form.addEventListener("submit", function (event) {
      if (form.dataset.tusComplete === "true") return;
      event.preventDefault();
      start();
    });
  }

  function init() {
    var forms = document.querySelectorAll("form[data-tus-upload]");
    for (var i = 0; i < forms.length; i += 1) enhance(forms[i]);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
