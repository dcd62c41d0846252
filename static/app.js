// Small progressive enhancements; every page works without them.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});
document.addEventListener("change", (event) => {
  const box = event.target;
  if (box.matches("input[data-select-all]")) {
    for (const c of document.querySelectorAll(`input[name="${box.dataset.selectAll}"]`)) {
      c.checked = box.checked;
    }
  }
});
document.addEventListener("change", (event) => {
  if (event.target.matches("select[data-autosubmit]")) event.target.form.requestSubmit();
});

// Live progress of copies: the claim page and the overview poll without a reload.
function renderProgress(row, item) {
  const badge = row.querySelector("[data-state]");
  if (badge) {
    badge.dataset.state = item.state;
    badge.className = `badge item-${item.state}`;
    badge.textContent = item.label;
  }
  const bar = row.querySelector(".progress");
  if (bar) {
    bar.setAttribute("aria-valuenow", item.percent);
    bar.querySelector("span").style.width = `${item.percent}%`;
  }
  const text = row.querySelector(".progress-text");
  if (text && item.text) text.textContent = item.text;
}

function poll(url, onData) {
  const tick = async () => {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (response.ok && onData(await response.json()) === false) return;
    } catch (error) {
      // a missed beat is fine; try again
    }
    setTimeout(tick, 1000);
  };
  tick();
}

document.addEventListener("DOMContentLoaded", () => {
  // Bars are drawn from their figure here: the CSP forbids inline style attributes.
  for (const bar of document.querySelectorAll(".progress[aria-valuenow]")) {
    const span = bar.querySelector("span");
    if (span) span.style.width = `${Number(bar.getAttribute("aria-valuenow")) || 0}%`;
  }
  const claim = document.querySelector("#claim[data-progress-url]");
  if (claim && claim.dataset.finished !== "true") {
    poll(claim.dataset.progressUrl, (data) => {
      for (const item of data.items) {
        const row = claim.querySelector(`tr[data-item-id="${item.item_id}"]`);
        if (row) renderProgress(row, item);
      }
      if (data.finished) {
        claim.dataset.finished = "true";
        const downloads = claim.querySelector(".downloads");
        if (downloads) downloads.hidden = false;
        window.location.reload();
        return false;
      }
    });
  }
  const copying = [...document.querySelectorAll("tr[data-progress-item]")];
  if (copying.length) {
    const ids = copying.map((row) => row.dataset.progressItem).join(",");
    const url = `${document.body.dataset.progressUrl}?items=${ids}`;
    poll(url, (data) => {
      let busy = false;
      for (const item of data.items) {
        for (const row of document.querySelectorAll(`tr[data-progress-item="${item.item_id}"]`)) {
          renderProgress(row, item);
        }
        busy = busy || item.state === "claiming";
      }
      return busy;
    });
  }
});

// After an action the server often sends the browser back to a section of a long page
// (e.g. #documents), so the page lands below the messages at its top. Show them there:
// right under that section's heading.
document.addEventListener("DOMContentLoaded", () => {
  const flashes = document.querySelectorAll("main > .flash");
  const id = decodeURIComponent(window.location.hash.slice(1));
  const target = id && document.getElementById(id);
  if (!flashes.length || !target || !target.closest("main")) return;
  const head = target.firstElementChild;
  if (head && head.matches("h1, h2, h3, .card-head")) head.after(...flashes);
  else target.prepend(...flashes);
  target.scrollIntoView();
});
