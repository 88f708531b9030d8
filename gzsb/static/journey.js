/* 填写志愿: the searchable pop-up over the plain selects, and small upload checks.
 * Vanilla JS, no framework. Without JavaScript (or without <dialog>) the page works with
 * the plain selects; this file only enhances it. */
(function () {
  "use strict";
  var form = document.getElementById("journey");
  if (!form) { return; }

  var rows = Array.prototype.slice.call(form.querySelectorAll("fieldset.choice"));
  var dialog = document.getElementById("catalog-dialog");
  var search = document.getElementById("catalog-q");
  var list = document.getElementById("catalog-results");
  var status = document.getElementById("catalog-status");
  var searchUrl = form.getAttribute("data-search-url");
  var active = null;
  var timer = null;
  var serial = 0;

  function selects(row) {
    return { inst: row.querySelector("select.inst-select"), major: row.querySelector("select.major-select") };
  }

  function label(row) { return row.querySelector("legend").firstChild.textContent.trim(); }

  /* Only the chosen institution's majors are offered in the plain select. */
  function filterMajors(row) {
    var s = selects(row);
    if (!s.inst || !s.major) { return; }
    var code = s.inst.value;
    Array.prototype.forEach.call(s.major.querySelectorAll("optgroup"), function (group) {
      var match = !code || group.getAttribute("data-institution") === code;
      group.hidden = !match;
      group.disabled = !match;
    });
    var chosen = s.major.selectedOptions && s.major.selectedOptions[0];
    if (chosen && chosen.value && chosen.getAttribute("data-institution") !== code) { s.major.value = ""; }
  }

  /* The chosen institution and major on two lines of the picker button (or its prompt). */
  function display(row) {
    var s = selects(row);
    var button = row.querySelector(".picker-display");
    var box = row.querySelector(".picker-text");
    if (!s.inst || !s.major || !box) { return; }
    var inst = s.inst.selectedOptions[0];
    var major = s.major.selectedOptions[0];
    box.textContent = "";
    if (inst && inst.value) {
      var name = document.createElement("span");
      name.className = "picker-inst";
      name.textContent = inst.textContent;
      var course = document.createElement("span");
      course.className = "picker-major";
      course.textContent = major && major.value ? major.textContent : "请选择专业";
      box.appendChild(name);
      box.appendChild(course);
      button.classList.remove("empty");
    } else {
      box.textContent = "点击选择院校和专业";
      button.classList.add("empty");
    }
  }

  function taken(inst, major, except) {
    for (var i = 0; i < rows.length; i++) {
      if (rows[i] === except) { continue; }
      var s = selects(rows[i]);
      if (s.inst && s.major && s.inst.value === inst && s.major.value === major) { return label(rows[i]); }
    }
    return null;
  }

  function choose(row, item) {
    var other = taken(item.institution, item.major, row);
    if (other) {
      status.textContent = "该院校专业已在" + other + "中填报，志愿不能重复";
      status.className = "error";
      status.setAttribute("role", "alert");
      return false;
    }
    var s = selects(row);
    s.inst.value = item.institution;
    filterMajors(row);
    Array.prototype.forEach.call(s.major.options, function (o) {
      o.selected = o.value === item.major && o.getAttribute("data-institution") === item.institution;
    });
    display(row);
    row.querySelector(".picker-error").textContent = "";
    return true;
  }

  /* Local search over the selects' options: the fallback when the JSON search fails. */
  function localResults(query) {
    var words = query.toLowerCase().split(/\s+/).filter(Boolean);
    var first = selects(rows[0]);
    var out = [];
    Array.prototype.forEach.call(first.major ? first.major.querySelectorAll("option[data-institution]") : [], function (o) {
      var code = o.getAttribute("data-institution");
      var instOption = first.inst.querySelector('option[value="' + code + '"]');
      var text = ((instOption ? instOption.textContent : code) + " " + o.textContent).toLowerCase();
      if (words.every(function (w) { return text.indexOf(w) >= 0; })) {
        out.push({
          institution: code, institution_name: instOption ? instOption.textContent.replace(/（.*）$/, "") : code,
          major: o.value, major_name: o.textContent.replace(/（.*）$/, ""), places: null
        });
      }
    });
    return out.slice(0, 60);
  }

  function render(results, truncated) {
    list.textContent = "";
    status.className = "hint";
    status.removeAttribute("role");
    results.forEach(function (item) {
      var li = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "catalog-item";
      var strong = document.createElement("strong");
      strong.textContent = item.institution_name;
      var major = document.createElement("span");
      major.textContent = item.major_name;
      var small = document.createElement("small");
      small.textContent = item.institution + " / " + item.major + (item.places ? " · 计划" + item.places + "人" : "");
      button.appendChild(strong);
      button.appendChild(major);
      button.appendChild(small);
      button.addEventListener("click", function () {
        if (active && choose(active, item)) { close(); }
      });
      li.appendChild(button);
      list.appendChild(li);
    });
    status.textContent = results.length ? (truncated ? "结果较多，请输入更多关键字缩小范围" : "共" + results.length + "条，点击选择")
      : "没有找到符合条件的院校专业";
  }

  function run(query) {
    var mine = ++serial;
    if (!window.fetch) { render(localResults(query), false); return; }
    status.className = "hint";
    status.textContent = "正在搜索…";
    fetch(searchUrl + "?q=" + encodeURIComponent(query), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
      .then(function (body) { if (mine === serial) { render(body.results || [], body.truncated); } })
      .catch(function () { if (mine === serial) { render(localResults(query), false); } });
  }

  function open(row) {
    active = row;
    search.value = "";
    dialog.showModal();
    search.focus();
    run("");
  }

  function close() {
    if (dialog.open) { dialog.close(); }
    if (active) { active.querySelector(".picker-display").focus(); }
    active = null;
  }

  rows.forEach(function (row) {
    var s = selects(row);
    if (s.inst) {
      s.inst.addEventListener("change", function () { filterMajors(row); display(row); });
      s.major.addEventListener("change", function () { display(row); });
      filterMajors(row);
    }
  });

  var canDialog = dialog && typeof dialog.showModal === "function" && rows.length && selects(rows[0]).inst;
  if (canDialog) {
    rows.forEach(function (row) {
      var picker = row.querySelector(".picker");
      picker.hidden = false;
      row.classList.add("enhanced");
      display(row);
      row.querySelector(".picker-display").addEventListener("click", function () { open(row); });
      row.querySelector(".picker-clear").addEventListener("click", function () {
        var s = selects(row);
        s.inst.value = "";
        s.major.value = "";
        filterMajors(row);
        display(row);
      });
    });
    search.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { run(search.value.trim()); }, 200);
    });
    search.addEventListener("keydown", function (e) { if (e.key === "Enter") { e.preventDefault(); } });
    dialog.querySelector(".dialog-close").addEventListener("click", close);
    dialog.addEventListener("cancel", function () { active = null; });
    dialog.addEventListener("click", function (e) { if (e.target === dialog) { close(); } });
  }

  /* Evidence files go only with 【提交更正申请】, and are checked before they are sent. */
  var files = form.querySelector("[data-report-files]");
  var maxFiles = parseInt(form.getAttribute("data-max-evidence"), 10) || 5;
  var maxBytes = (parseInt(form.getAttribute("data-evidence-mb"), 10) || 5) * 1024 * 1024;
  form.addEventListener("submit", function (e) {
    if (!files) { return; }
    var reporting = e.submitter && e.submitter.hasAttribute("data-report");
    if (!reporting) { files.disabled = true; return; }
    var problem = null;
    if (files.files.length > maxFiles) { problem = "最多上传" + maxFiles + "张证明材料图片"; }
    Array.prototype.forEach.call(files.files, function (f) {
      if (!problem && f.size > maxBytes) { problem = f.name + "：图片不能超过" + (maxBytes / 1048576) + "MB"; }
      if (!problem && !/^image\/(jpeg|png)$/.test(f.type)) { problem = f.name + "：仅支持JPG或PNG格式的图片"; }
    });
    if (problem) {
      e.preventDefault();
      var field = files.closest(".field");
      var note = field.querySelector(".error") || field.appendChild(document.createElement("small"));
      note.className = "error";
      note.textContent = problem;
      field.classList.add("invalid");
    }
  });
  /* Back from the browser's cache: the file input must work again. */
  window.addEventListener("pageshow", function () { if (files) { files.disabled = false; } });
})();
