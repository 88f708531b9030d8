/* The flow workbench's editor (/admin/flows/edit): a textarea with a line-number gutter.
   As the admin types (debounced), the YAML is POSTed to the server, which answers every
   problem with its line and, when the flow is valid, the redrawn diagram (SVG). Everything
   the server sends is put into the page as text, except the diff and impact panels, which
   the server renders with Jinja's escaping. No external code, no inline scripts (CSP). */
(function () {
  "use strict";

  var root = document.getElementById("workbench");
  if (!root) { return; }
  var text = document.getElementById("wb-text");
  var gutter = document.getElementById("wb-gutter");
  var status = document.getElementById("wb-status");
  var list = document.getElementById("wb-problems");
  var diagram = document.getElementById("wb-diagram");
  var diffBox = document.getElementById("wb-diff");
  var impactBox = document.getElementById("wb-impact");
  var csrf = root.dataset.csrf;
  var maxBytes = parseInt(root.dataset.maxBytes, 10) || 262144;
  var DELAY_MS = 400;
  var timer = null;
  var sent = 0;       // number of the newest validation request
  var problemsByLine = {};
  var shownLines = 0;
  var diagramUrl = null;

  function setStatus(message, kind) {
    status.textContent = message;
    status.className = "wb-status" + (kind ? " " + kind : "");
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var error = new Error(data.message || ("服务器返回 " + response.status));
          error.data = data;
          throw error;
        }
        return data;
      });
    });
  }

  function tooBig() {
    return new Blob([text.value]).size > maxBytes;
  }

  // ---------------------------------------------------------------- gutter

  function lineCount() {
    return text.value.split("\n").length;
  }

  function drawGutter() {
    var count = lineCount();
    var fragment = document.createDocumentFragment();
    for (var n = 1; n <= count; n += 1) {
      var cell = document.createElement("div");
      cell.textContent = String(n);
      cell.dataset.line = String(n);
      var here = problemsByLine[n];
      if (here) {
        cell.className = "bad";
        cell.title = here.join("\n");
      }
      fragment.appendChild(cell);
    }
    gutter.replaceChildren(fragment);
    shownLines = count;
    syncScroll();
  }

  function syncScroll() {
    gutter.scrollTop = text.scrollTop;
  }

  function lineHeight() {
    var value = parseFloat(window.getComputedStyle(text).lineHeight);
    return isNaN(value) ? 20 : value;
  }

  function goToLine(line) {
    var lines = text.value.split("\n");
    var target = Math.max(1, Math.min(line, lines.length));
    var offset = 0;
    for (var i = 0; i < target - 1; i += 1) { offset += lines[i].length + 1; }
    text.focus();
    text.setSelectionRange(offset, offset + lines[target - 1].length);
    text.scrollTop = Math.max(0, (target - 1) * lineHeight() - text.clientHeight / 3);
    syncScroll();
  }

  // ---------------------------------------------------------------- problems

  function showProblems(problems) {
    problemsByLine = {};
    list.replaceChildren();
    problems.forEach(function (p) {
      var item = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "wb-problem";
      var where = document.createElement("span");
      where.className = "wb-line";
      where.textContent = p.line ? "第" + p.line + "行" : "全文";
      var path = document.createElement("code");
      path.textContent = p.path || "";
      var message = document.createElement("span");
      message.className = "wb-message";
      message.textContent = p.message;
      button.append(where, " ", path, " ", message);
      if (p.line) {
        button.dataset.line = String(p.line);
        (problemsByLine[p.line] = problemsByLine[p.line] || []).push((p.path ? p.path + ": " : "") + p.message);
        button.addEventListener("click", function () { goToLine(p.line); });
      }
      item.appendChild(button);
      list.appendChild(item);
    });
    if (!problems.length) {
      var none = document.createElement("li");
      none.className = "ok";
      none.textContent = "没有问题";
      list.appendChild(none);
    }
    drawGutter();
  }

  function showDiagram(svg, sha) {
    var url = URL.createObjectURL(new Blob([svg], { type: "image/svg+xml" }));
    diagram.src = url;
    diagram.dataset.sha = sha || "";
    if (diagramUrl) { URL.revokeObjectURL(diagramUrl); }
    diagramUrl = url;
    diagram.classList.remove("stale");
  }

  // One select per live state the edit removes (built from names, as text).
  var mappingBox = document.getElementById("wb-mapping");
  var mappingFields = document.getElementById("wb-mapping-fields");
  var mappingKey = "";

  function showMapping(removed, states) {
    var key = JSON.stringify([removed, states]);
    if (key === mappingKey) { return; }  // keep what the admin chose
    mappingKey = key;
    mappingFields.replaceChildren();
    removed.forEach(function (old) {
      var label = document.createElement("label");
      var name = document.createElement("span");
      var code = document.createElement("code");
      code.textContent = old;
      name.append(code, " →");
      var select = document.createElement("select");
      select.name = "map_" + old;
      var none = document.createElement("option");
      none.value = "";
      none.textContent = "（不迁移处于此状态的报名）";
      select.appendChild(none);
      states.forEach(function (state) {
        var option = document.createElement("option");
        option.value = state;
        option.textContent = state;
        select.appendChild(option);
      });
      label.append(name, select);
      mappingFields.appendChild(label);
    });
    mappingBox.hidden = removed.length === 0;
  }

  function validate() {
    timer = null;
    if (tooBig()) {
      setStatus("流程文件过大（最多 " + Math.floor(maxBytes / 1024) + " KiB）", "error");
      return;
    }
    var number = (sent += 1);
    setStatus("正在检查…", "busy");
    post(root.dataset.validateUrl, { yaml: text.value }).then(function (data) {
      if (number !== sent) { return; }  // an older answer arriving late
      showProblems(data.problems || []);
      if (data.ok) {
        setStatus("没有问题，流程图已更新", "ok");
        showDiagram(data.svg, data.sha256);
        showMapping(data.removed || [], data.states || []);
      } else {
        setStatus("发现" + data.problems.length + "个问题", "error");
        diagram.classList.add("stale");
      }
      root.dataset.checked = String(number);
    }).catch(function (error) {
      if (number !== sent) { return; }
      setStatus("检查失败：" + error.message, "error");
    });
  }

  function schedule() {
    if (timer !== null) { window.clearTimeout(timer); }
    timer = window.setTimeout(validate, DELAY_MS);
    setStatus("等待输入结束…", "busy");
    if (lineCount() !== shownLines) { drawGutter(); }
  }

  // ---------------------------------------------------------------- diff and impact

  function waitFor(box, data) {
    box.textContent = "";
    var note = document.createElement("p");
    note.textContent = "在办报名共" + data.job.total + "份，评估在后台进行，本栏会自动更新。";
    var bar = document.createElement("progress");
    bar.max = 100;
    bar.value = data.job.percent;
    var count = document.createElement("span");
    count.className = "job-count";
    count.setAttribute("aria-live", "polite");
    count.textContent = "已处理 " + data.job.done + " / " + data.job.total;
    box.append(note, bar, count);
    window.gzsbPollJob(box, data.status_url, function (done) { box.innerHTML = done.html; });
  }

  function panel(box, url, busy) {
    box.hidden = false;
    box.textContent = busy;
    box.setAttribute("aria-busy", "true");
    post(url, { yaml: text.value }).then(function (data) {
      if (data.ok && data.job && !data.job.finished) {
        waitFor(box, data);  // a large fleet: a worker job, polled
      } else if (data.ok && data.job) {
        window.gzsbPollJob(box, data.status_url, function (done) { box.innerHTML = done.html; });
      } else if (data.ok) {
        box.innerHTML = data.html;  // rendered by the server with autoescaping
      } else {
        box.textContent = "流程文件有" + data.problems.length + "个问题，请先改正。";
        showProblems(data.problems);
      }
    }).catch(function (error) {
      box.textContent = "失败：" + error.message;
    }).then(function () { box.removeAttribute("aria-busy"); });
  }

  text.addEventListener("input", schedule);
  text.addEventListener("scroll", syncScroll);
  document.getElementById("wb-diff-button").addEventListener("click", function () {
    panel(diffBox, root.dataset.diffUrl, "正在比较…");
  });
  document.getElementById("wb-impact-button").addEventListener("click", function () {
    panel(impactBox, root.dataset.impactUrl, "正在评估在办考生，请稍候…");
  });
  document.getElementById("propose-form").addEventListener("submit", function (event) {
    if (tooBig()) {
      event.preventDefault();
      setStatus("流程文件过大，不能提交", "error");
    }
  });

  drawGutter();
  validate();
}());
