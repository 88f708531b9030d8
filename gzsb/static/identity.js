// 身份认证: previews of the chosen images; very large photos downscaled before sending;
// 上传中 with progress; on 比对中, poll the status until it changes. No external code.
(function () {
  "use strict";

  var MAX_SIDE = 2400;           // longer side after downscaling (the server detects on ≤ 640 px)
  var BIG_BYTES = 3 * 1024 * 1024;

  // A very large photo (a phone's 12-48 MP original) is redrawn smaller as a JPEG: faster on
  // a slow connection and well inside the server's size cap. Anything else is sent as is.
  function shrink(file) {
    return new Promise(function (resolve) {
      if (!file || !/^image\/(jpeg|png)$/.test(file.type) || file.size < BIG_BYTES || !window.createImageBitmap) {
        resolve(file); return;
      }
      createImageBitmap(file, { imageOrientation: "from-image" }).then(function (bitmap) {
        var scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
        if (scale >= 1 && file.size < 2 * BIG_BYTES) { resolve(file); return; }
        var canvas = document.createElement("canvas");
        canvas.width = Math.round(bitmap.width * scale);
        canvas.height = Math.round(bitmap.height * scale);
        canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
        canvas.toBlob(function (blob) {
          resolve(blob ? new File([blob], (file.name || "photo").replace(/\.\w+$/, "") + ".jpg", { type: "image/jpeg" }) : file);
        }, "image/jpeg", 0.9);
      }).catch(function () { resolve(file); });
    });
  }

  function sendWithProgress(form) {
    var box = form.querySelector(".upload-progress");
    var bar = box && box.querySelector("progress");
    var label = box && box.querySelector("span");
    var button = form.querySelector("button[type=submit]");
    var inputs = Array.prototype.slice.call(form.querySelectorAll("input[type=file]"));
    if (button) button.disabled = true;
    if (box) { box.hidden = false; label.textContent = "正在处理照片……"; }
    Promise.all(inputs.map(function (input) { return shrink(input.files && input.files[0]); })).then(function (files) {
      var data = new FormData(form);
      inputs.forEach(function (input, i) { if (files[i]) data.set(input.name, files[i]); });
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.upload.onprogress = function (e) {
        if (!e.lengthComputable || !box) return;
        var percent = Math.round(100 * e.loaded / e.total);
        bar.value = percent;
        label.textContent = percent < 100 ? "上传中 " + percent + "%" : "上传完成，正在检查照片……";
      };
      xhr.onload = function () {
        // Accepted: the server redirected; load where it led (a real navigation). A refusal
        // (422, 413) re-renders the page with the reasons: show that answer.
        if (xhr.status < 400) { window.location.assign(xhr.responseURL || window.location.href); return; }
        document.open(); document.write(xhr.responseText); document.close();
      };
      xhr.onerror = function () {
        if (button) button.disabled = false;
        if (label) label.textContent = "网络中断，上传失败，请检查网络后重试";
      };
      xhr.send(data);
    });
  }

  document.querySelectorAll("form.identity-form, form.manual-form").forEach(function (form) {
    if (!window.FormData || !window.Promise || !window.XMLHttpRequest) return;  // plain submit
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      sendWithProgress(form);
    });
  });

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
