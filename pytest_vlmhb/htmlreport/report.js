/* report.html's sample browser, side-by-side view and sortable tables.
   Hand-written, no library, nothing loaded from the network. Data comes from the
   JSON island #vlmhb-data (layout: pytest_vlmhb/htmlreport/data.py) and is put in
   the page as text only (textContent / attributes), never parsed as HTML. */
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("vlmhb-data").textContent);
  var cases = data.cases, samples = data.samples, rows = data.rows;
  var OUTCOME = { g: "good", b: "bad", e: "error" };
  // row fields
  var CASE = 0, SAMPLE = 1, ANSWER = 2, RAW = 3, SCORES = 4, TTFT = 5, E2E = 6, ERROR = 7, OUT = 8;
  // sample fields
  var SID = 0, CAT = 1, PROMPT = 2, REF = 3, PAGES = 4;

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        if (attrs[key] !== null && attrs[key] !== undefined) node.setAttribute(key, attrs[key]);
      });
    }
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function fmt(value) { return value === null || value === undefined ? "-" : String(value); }

  function score(row) {
    var c = cases[row[CASE]];
    return c.primary ? row[SCORES][c.metrics.indexOf(c.primary)] : null;
  }

  function option(select, value, label) { select.appendChild(el("option", { value: value }, [label])); }

  function references(text) {
    if (text === null) return "";
    try {
      var ref = JSON.parse(text);
      if (ref && typeof ref === "object" && !Array.isArray(ref)) {
        return Object.keys(ref).map(function (key) {
          var value = ref[key];
          var shown = Array.isArray(value) ? value.map(function (v) {
            return typeof v === "string" ? v : JSON.stringify(v);
          }).join(" | ") : (typeof value === "string" ? value : JSON.stringify(value));
          return key + ": " + shown;
        }).join("\n");
      }
    } catch (e) { /* not JSON: shown as it is */ }
    return text;
  }

  // -- pages: thumbnail, placeholder, lightbox with every page -----------------------

  var lightbox = $("lightbox");

  function closeLightbox() { lightbox.hidden = true; lightbox.textContent = ""; }

  function openLightbox(sample) {
    var pages = sample[PAGES];
    lightbox.textContent = "";
    lightbox.appendChild(el("p", null, [sample[SID] + ": " + pages.length + " page(s). Click or press Escape to close."]));
    pages.forEach(function (page, i) {
      lightbox.appendChild(el("img", { src: page[1], alt: "page " + (i + 1) + " of " + sample[SID] }));
    });
    lightbox.hidden = false;
  }

  lightbox.addEventListener("click", closeLightbox);
  document.addEventListener("keydown", function (event) { if (event.key === "Escape") closeLightbox(); });

  function placeholder(reason) {
    return el("div", { "class": "ph", title: reason }, ["no image: " + reason]);
  }

  function pagesCell(sample) {
    var pages = sample[PAGES];
    if (typeof pages === "string") return el("td", null, [placeholder(pages)]);
    var img = el("img", { "class": "thumb", src: pages[0][0], alt: "page 1 of " + sample[SID] });
    img.addEventListener("error", function () {
      if (img.parentNode && img.parentNode.parentNode) {
        img.parentNode.parentNode.replaceChild(placeholder("thumbnail missing"), img.parentNode);
      }
    });
    var link = el("a", { href: pages[0][1], target: "_blank" }, [img]);
    link.addEventListener("click", function (event) { event.preventDefault(); openLightbox(sample); });
    var more = pages.length > 1 ? el("div", { "class": "pages" }, [pages.length + " pages"]) : null;
    return el("td", null, [link, more]);
  }

  // -- pagination --------------------------------------------------------------------

  function pager(container, total, size, page, go) {
    container.textContent = "";
    var count = size ? Math.max(1, Math.ceil(total / size)) : 1;
    var prev = el("button", { type: "button", "class": "prev" }, ["previous"]);
    var next = el("button", { type: "button", "class": "next" }, ["next"]);
    prev.disabled = page <= 0;
    next.disabled = page >= count - 1;
    prev.addEventListener("click", function () { go(page - 1); });
    next.addEventListener("click", function () { go(page + 1); });
    container.appendChild(prev);
    container.appendChild(next);
    container.appendChild(el("span", { "class": "count" }, ["page " + (page + 1) + " of " + count]));
  }

  function pageOf(list, size, page) {
    var count = size ? Math.max(1, Math.ceil(list.length / size)) : 1;
    var at = Math.min(Math.max(page, 0), count - 1);
    return { page: at, items: size ? list.slice(at * size, at * size + size) : list };
  }

  // -- sample browser ----------------------------------------------------------------

  var filters = {
    kase: $("f-case"), task: $("f-task"), category: $("f-category"), outcome: $("f-outcome"),
    search: $("f-search"), sort: $("f-sort"), size: $("f-page-size")
  };
  var browser = { page: 0 };

  cases.forEach(function (c, i) { option(filters.kase, String(i), c.id); });
  Array.from(new Set(cases.map(function (c) { return c.task; }))).forEach(function (task) {
    option(filters.task, task, task);
  });
  Array.from(new Set(samples.map(function (s) { return s[CAT]; }).filter(function (c) { return c !== null; })))
    .sort().forEach(function (cat) { option(filters.category, cat, cat); });

  function matches(row, query) {
    var c = cases[row[CASE]], s = samples[row[SAMPLE]];
    if (filters.kase.value !== "" && row[CASE] !== Number(filters.kase.value)) return false;
    if (filters.task.value !== "" && c.task !== filters.task.value) return false;
    if (filters.category.value !== "" && s[CAT] !== filters.category.value) return false;
    if (filters.outcome.value !== "" && OUTCOME[row[OUT]] !== filters.outcome.value) return false;
    if (query) {
      var hay = [s[SID], s[PROMPT], row[ANSWER], row[RAW], row[ERROR], c.id].join("\n").toLowerCase();
      if (hay.indexOf(query) < 0) return false;
    }
    return true;
  }

  var SORT_KEYS = { score: score, ttft: function (row) { return row[TTFT]; }, e2e: function (row) { return row[E2E]; } };

  function sortList(list, how) {
    if (!how) return list;
    var parts = how.split("-"), key = SORT_KEYS[parts[0]], sign = parts[1] === "desc" ? -1 : 1;
    return list.slice().sort(function (a, b) {
      var x = key(rows[a]), y = key(rows[b]);
      if (x === null && y === null) return a - b;
      if (x === null) return 1;
      if (y === null) return -1;
      return x === y ? a - b : sign * (x - y);
    });
  }

  function scoresCell(row) {
    var c = cases[row[CASE]];
    return el("td", null, c.metrics.map(function (name, i) {
      return el("div", { "class": name === c.primary ? "primary" : null }, [name + " " + fmt(row[SCORES][i])]);
    }));
  }

  function answerCell(row) {
    var parts = [el("div", { "class": "pre" }, [row[ANSWER] === null ? "(no answer)" : row[ANSWER]])];
    if (row[RAW] !== null) parts.push(el("div", { "class": "pre raw" }, ["raw: " + row[RAW]]));
    return el("td", null, parts);
  }

  function sampleRow(row) {
    var c = cases[row[CASE]], s = samples[row[SAMPLE]], outcome = OUTCOME[row[OUT]];
    var tr = el("tr", { "class": outcome, "data-case-id": c.id, "data-sample-id": s[SID], "data-outcome": outcome });
    tr.appendChild(pagesCell(s));
    tr.appendChild(el("td", null, [
      el("div", null, [c.id]),
      el("div", { "class": "pages" }, ["task " + c.task + (s[CAT] !== null ? ", category " + s[CAT] : "")]),
      el("div", null, [el("b", null, [s[SID]]), " ", el("span", { "class": "tag " + outcome }, [outcome])])
    ]));
    tr.appendChild(el("td", null, [el("div", { "class": "pre" }, [s[PROMPT] || ""])]));
    tr.appendChild(answerCell(row));
    tr.appendChild(el("td", null, [el("div", { "class": "pre" }, [references(s[REF])])]));
    tr.appendChild(scoresCell(row));
    tr.appendChild(el("td", { "class": "num" }, [fmt(row[TTFT])]));
    tr.appendChild(el("td", { "class": "num" }, [fmt(row[E2E])]));
    tr.appendChild(el("td", { "class": "err" }, [row[ERROR] || ""]));
    return tr;
  }

  function renderSamples() {
    var query = filters.search.value.trim().toLowerCase();
    var list = [];
    for (var i = 0; i < rows.length; i++) if (matches(rows[i], query)) list.push(i);
    list = sortList(list, filters.sort.value);
    var size = Number(filters.size.value);
    var shown = pageOf(list, size, browser.page);
    browser.page = shown.page;
    var body = $("samples-body"), frag = document.createDocumentFragment();
    shown.items.forEach(function (i) { frag.appendChild(sampleRow(rows[i])); });
    body.textContent = "";
    body.appendChild(frag);
    var first = size ? shown.page * size : 0;
    $("samples-count").textContent = list.length + " of " + rows.length + " sample rows" +
      (shown.items.length ? ", showing " + (first + 1) + "-" + (first + shown.items.length) : "");
    pager($("samples-pager"), list.length, size, shown.page, function (page) { browser.page = page; renderSamples(); });
  }

  Object.keys(filters).forEach(function (name) {
    var control = filters[name];
    control.addEventListener(control.tagName === "INPUT" ? "input" : "change", function () {
      browser.page = 0;
      renderSamples();
    });
  });

  // -- side by side --------------------------------------------------------------------

  var byCase = cases.map(function () { return {}; });
  rows.forEach(function (row) { byCase[row[CASE]][samples[row[SAMPLE]][SID]] = row; });
  var sbs = { a: $("sbs-a"), b: $("sbs-b"), only: $("sbs-only"), size: $("sbs-page-size"), page: 0 };

  function shared(i, j) {
    return Object.keys(byCase[i]).filter(function (sid) { return byCase[j][sid] !== undefined; }).length;
  }

  function defaultPair() {
    var best = [0, Math.min(1, cases.length - 1)], most = -1;
    for (var i = 0; i < cases.length; i++) {
      for (var j = i + 1; j < cases.length; j++) {
        var n = shared(i, j);
        if (n > most) { most = n; best = [i, j]; }
      }
    }
    return best;
  }

  function disagree(a, b) {
    var ea = Boolean(a[ERROR]), eb = Boolean(b[ERROR]);
    if (ea || eb) return ea !== eb;
    return a[ANSWER] !== b[ANSWER];
  }

  function sideCells(row) {
    var outcome = OUTCOME[row[OUT]];
    var answer = row[ERROR]
      ? el("div", { "class": "pre err" }, ["error: " + row[ERROR]])
      : el("div", { "class": "pre" }, [row[ANSWER] === null ? "(no answer)" : row[ANSWER]]);
    return [
      el("td", null, [answer]),
      el("td", { "class": "num" }, [fmt(score(row)), " ", el("span", { "class": "tag " + outcome }, [outcome])])
    ];
  }

  function renderSideBySide() {
    var ia = Number(sbs.a.value), ib = Number(sbs.b.value);
    var pairs = [];
    var total = 0;
    rows.forEach(function (row) {
      if (row[CASE] !== ia) return;
      var sid = samples[row[SAMPLE]][SID], other = byCase[ib][sid];
      if (other === undefined || ia === ib) return;
      total += 1;
      var differs = disagree(row, other);
      if (!sbs.only.checked || differs) pairs.push([row, other, differs]);
    });
    var size = Number(sbs.size.value);
    var shown = pageOf(pairs, size, sbs.page);
    sbs.page = shown.page;
    var body = $("sbs-body"), frag = document.createDocumentFragment();
    shown.items.forEach(function (pair) {
      var s = samples[pair[0][SAMPLE]];
      var tr = el("tr", { "class": pair[2] ? "disagree" : null, "data-sample-id": s[SID], "data-disagree": pair[2] ? "1" : "0" });
      tr.appendChild(pagesCell(s));
      tr.appendChild(el("td", null, [el("b", null, [s[SID]])]));
      sideCells(pair[0]).concat(sideCells(pair[1])).forEach(function (td) { tr.appendChild(td); });
      tr.appendChild(el("td", null, [el("div", { "class": "pre" }, [references(samples[pair[1][SAMPLE]][REF])])]));
      frag.appendChild(tr);
    });
    body.textContent = "";
    body.appendChild(frag);
    var differing = sbs.only.checked ? pairs.length : pairs.filter(function (p) { return p[2]; }).length;
    $("sbs-count").textContent = ia === ib
      ? "Pick two different cases."
      : differing + " disagreement(s) on " + total + " shared sample(s): " + cases[ia].id + " vs " + cases[ib].id;
    pager($("sbs-pager"), pairs.length, size, shown.page, function (page) { sbs.page = page; renderSideBySide(); });
  }

  cases.forEach(function (c, i) { option(sbs.a, String(i), c.id); option(sbs.b, String(i), c.id); });
  if (cases.length >= 2) {
    var pair = defaultPair();
    sbs.a.value = String(pair[0]);
    sbs.b.value = String(pair[1]);
  }
  [sbs.a, sbs.b, sbs.only, sbs.size].forEach(function (control) {
    control.addEventListener("change", function () { sbs.page = 0; renderSideBySide(); });
  });

  // -- sortable tables (leaderboard, report tables) ------------------------------------

  function sortKey(cell) {
    var text = cell.getAttribute("data-sort");
    if (text === null) text = cell.textContent.trim();
    var n = parseFloat(text);
    return isNaN(n) || !/^[-+]?[0-9.]/.test(text) ? { n: null, t: text } : { n: n, t: text };
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    var heads = table.querySelectorAll("thead th");
    Array.prototype.forEach.call(heads, function (th, col) {
      th.addEventListener("click", function () {
        var dir = th.getAttribute("data-dir") === "asc" ? "desc" : "asc";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("data-dir"); });
        th.setAttribute("data-dir", dir);
        var body = table.tBodies[0];
        var list = Array.prototype.slice.call(body.rows);
        list.sort(function (x, y) {
          var a = sortKey(x.cells[col] || x), b = sortKey(y.cells[col] || y);
          if ((a.n === null) !== (b.n === null)) return a.n === null ? 1 : -1; // numbers first
          var order = a.n !== null ? a.n - b.n : a.t.localeCompare(b.t);
          return dir === "asc" ? order : -order;
        });
        list.forEach(function (row) { body.appendChild(row); });
      });
    });
  });

  renderSamples();
  renderSideBySide();
})();
