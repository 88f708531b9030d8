/* Fleet jobs: poll a running job's status URL, move its progress bar, and when it ends
   either reload the page (data-reload) or put in the HTML the server rendered. Also used by
   the workbench's impact panel through window.gzsbPollJob. */
(function () {
  "use strict";
  var INTERVAL_MS = 1000;

  function show(box, job) {
    var bar = box.querySelector("progress");
    var count = box.querySelector(".job-count");
    if (bar) { bar.value = job.percent; bar.textContent = job.percent + "%"; }
    if (count) { count.textContent = "已处理 " + job.done + " / " + job.total; }
  }

  function poll(box, url, onDone) {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        if (data.job.finished) { onDone(data); return; }
        show(box, data.job);
        window.setTimeout(function () { poll(box, url, onDone); }, INTERVAL_MS);
      })
      .catch(function (error) {
        var count = box.querySelector(".job-count");
        if (count) { count.textContent = "暂时无法获取进度（" + error.message + "），稍后重试…"; }
        window.setTimeout(function () { poll(box, url, onDone); }, INTERVAL_MS * 5);
      });
  }

  window.gzsbPollJob = poll;

  document.querySelectorAll("[data-job-url]").forEach(function (box) {
    poll(box, box.dataset.jobUrl, function (data) {
      if (box.dataset.reload) { window.location.reload(); return; }
      box.innerHTML = data.html;  // rendered by the server with autoescaping
    });
  });
}());
