// 上传审核: choosing a photo in 【+】 sends it at once (the page works without this too).
(function () {
  "use strict";
  document.querySelectorAll(".add-form").forEach(function (form) {
    var input = form.querySelector("input[type=file]");
    var button = form.querySelector(".upload-button");
    if (!input || !button) {
      return;
    }
    button.style.display = "none";
    input.addEventListener("change", function () {
      if (input.files && input.files.length) {
        form.classList.add("busy");
        form.submit();
      }
    });
  });
})();
