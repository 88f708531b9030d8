// 身份认证: previews of the chosen images; on 比对中, poll the status until it changes.
(function () {
  "use strict";

  document.querySelectorAll("input[type=file][data-preview]").forEach(function (input) {
    var img = document.getElementById(input.dataset.preview);
    var url = null;
    input.addEventListener("change", function () {
      if (url) { URL.revokeObjectURL(url); url = null; }
      var file = input.files && input.files[0];
      if (!img || !file || !/^image\/(jpeg|png)$/.test(file.type)) { if (img) img.hidden = true; return; }
      url = URL.createObjectURL(file);
      img.src = url;
      img.hidden = false;
    });
  });

  var noId = document.getElementById("no-id-card");
  var idCardField = document.querySelector(".manual-form [data-id-card]");
  if (noId && idCardField) {
    var sync = function () { idCardField.hidden = noId.checked; };
    noId.addEventListener("change", sync);
    sync();
  }

  var panel = document.getElementById("face-checking");
  if (!panel) return;
  var statusUrl = panel.dataset.statusUrl;
  var resultUrl = panel.dataset.resultUrl;
  var hint = document.getElementById("checking-hint");
  var failures = 0;
  var polls = 0;
  function poll() {
    polls += 1;
    if (hint && polls === 40) {  // about a minute: the queue is long, or a worker is being replaced
      hint.textContent = "比对时间比平时长，请稍候；也可以稍后重新登录查看结果，已上传的照片不会丢失。";
    }
    fetch(statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) { if (!response.ok) throw new Error(response.status); return response.json(); })
      .then(function (body) {
        failures = 0;
        if (body.state !== panel.dataset.state) { window.location.assign(resultUrl); return; }
        setTimeout(poll, 1500);
      })
      .catch(function () {
        failures += 1;
        if (hint && failures >= 3) hint.textContent = "网络不稳定，正在重试……";
        setTimeout(poll, Math.min(1500 * (failures + 1), 10000));
      });
  }
  setTimeout(poll, 1500);
})();
