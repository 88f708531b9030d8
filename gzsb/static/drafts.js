/* Drafts of long forms, kept in this browser (localStorage), so that a lost session (退出 in
 * another tab, a long pause) loses nothing: forms marked data-draft="<step>" are saved as
 * they are typed, under the logged-in account and the step; after logging in again the
 * same page restores them. Never kept: passwords, files (ID-card images), hidden fields
 * (CSRF token), read-only fields (taken from the account) and fields marked data-no-draft.
 * A draft goes when its form was submitted and taken (the application's version moved on,
 * or the form is no longer shown), and when another account logs in on this browser. Without localStorage the forms work as before. */
(function () {
  "use strict";
  var PREFIX = "gzsb-draft:";
  var OWNER = "gzsb-draft-owner";
  var MAX_AGE_MS = 14 * 24 * 3600 * 1000;
  var store;
  try {
    store = window.localStorage;
    store.setItem(PREFIX + "probe", "1");
    store.removeItem(PREFIX + "probe");
  } catch (e) {
    return;
  }
  var account = document.body.getAttribute("data-account");
  if (!account) { return; } // logged out (e.g. the 重新登录 page): keep every draft as it is

  function keys() {
    var out = [];
    for (var i = 0; i < store.length; i++) {
      var k = store.key(i);
      if (k && k.indexOf(PREFIX) === 0) { out.push(k); }
    }
    return out;
  }

  function read(key) {
    try { return JSON.parse(store.getItem(key) || "null"); } catch (e) { return null; }
  }

  /* Another account on this browser: the previous one's drafts go (a shared computer). */
  var mine = PREFIX + account + ":";
  if (store.getItem(OWNER) !== account) {
    keys().forEach(function (k) { if (k.indexOf(mine) !== 0) { store.removeItem(k); } });
    store.setItem(OWNER, account);
  }

  var forms = Array.prototype.slice.call(document.querySelectorAll("form[data-draft]"));
  var here = forms.map(function (f) { return mine + f.getAttribute("data-draft"); });

  /* A submitted draft whose form is no longer shown: the submit went through. Old ones go too. */
  keys().forEach(function (k) {
    var d = read(k);
    var stale = !d || Date.now() - (d.at || 0) > MAX_AGE_MS;
    if (stale || (k.indexOf(mine) === 0 && d.sent && here.indexOf(k) < 0)) { store.removeItem(k); }
  });

  function kept(field) {
    if (!field.name || field.disabled || field.readOnly || field.hasAttribute("data-no-draft")) { return false; }
    var type = (field.type || "").toLowerCase();
    return ["password", "file", "hidden", "submit", "button", "reset"].indexOf(type) < 0;
  }

  function collect(form) {
    var values = {};
    Array.prototype.forEach.call(form.elements, function (field) {
      if (!kept(field)) { return; }
      var type = (field.type || "").toLowerCase();
      if (type === "radio") {
        if (field.checked) { values[field.name] = field.value; }
      } else if (type === "checkbox") {
        values[field.name] = field.checked;
      } else {
        values[field.name] = field.value;
      }
    });
    return values;
  }

  /* The application's version the form was rendered at: every event fired raises it. */
  function version(form) {
    var field = form.querySelector("input[name=version]");
    return field ? field.value : "";
  }

  function save(form, key, sent) {
    try {
      var draft = { at: Date.now(), sent: !!sent, version: version(form), values: collect(form) };
      store.setItem(key, JSON.stringify(draft));
    } catch (e) { /* full or refused: the form still works */ }
  }

  function restore(form, values) {
    var changed = false;
    Array.prototype.forEach.call(form.elements, function (field) {
      if (!kept(field) || !Object.prototype.hasOwnProperty.call(values, field.name)) { return; }
      var type = (field.type || "").toLowerCase();
      var value = values[field.name];
      if (type === "radio") {
        if (field.checked !== (field.value === value)) { field.checked = field.value === value; changed = true; }
      } else if (type === "checkbox") {
        if (field.checked !== !!value) { field.checked = !!value; changed = true; }
      } else if (field.value !== value) {
        field.value = value;
        changed = true;
        field.dispatchEvent(new Event("change", { bubbles: true }));
      }
    });
    return changed;
  }

  function notice(form, key) {
    var box = document.createElement("div");
    box.className = "notice ok draft-restored";
    box.setAttribute("role", "status");
    box.id = "draft-restored";
    var text = document.createElement("p");
    text.textContent = "已恢复您上次填写但未提交的内容，请核对后提交。";
    var drop = document.createElement("button");
    drop.type = "button";
    drop.className = "link";
    drop.textContent = "不恢复，清除草稿";
    drop.addEventListener("click", function () {
      store.removeItem(key);
      window.location.reload();
    });
    text.appendChild(drop);
    box.appendChild(text);
    form.insertBefore(box, form.firstChild);
  }

  function start() {
    forms.forEach(function (form, i) {
      var key = here[i];
      var draft = read(key);
      if (draft && draft.sent && draft.version !== version(form)) {
        store.removeItem(key); // submitted and taken: the application moved on
        draft = null;
      }
      if (draft && draft.values && restore(form, draft.values)) { notice(form, key); }
      var timer = null;
      function later() {
        clearTimeout(timer);
        timer = setTimeout(function () { save(form, key, false); }, 300);
      }
      form.addEventListener("input", later);
      form.addEventListener("change", later);
      form.addEventListener("submit", function () { clearTimeout(timer); save(form, key, true); });
    });
  }

  /* After the page's other scripts (journey.js listens for the restored selects' changes). */
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
