// plscope report: sortable and filterable tables, gallery filter. Inline, no network, no libraries.
(function () {
  "use strict";
  function key(td, num) {
    var k = td.getAttribute("data-sort");
    if (k === null) k = td.textContent;
    if (!num) return k.toLowerCase();
    var x = parseFloat(k);
    return isNaN(x) ? null : x;
  }
  function sortBy(table, col, th) {
    var num = th.getAttribute("data-type") === "num";
    var asc = th.getAttribute("aria-sort") !== "ascending";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[col], num), y = key(b.cells[col], num);
      if (x === y) return 0;
      if (x === null || x === "") return 1;   // missing values last
      if (y === null || y === "") return -1;
      return (x < y ? -1 : 1) * (asc ? 1 : -1);
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.addEventListener("click", function () { sortBy(table, i, th); });
    });
  });
  document.querySelectorAll("input.table-filter").forEach(function (input) {
    var table = document.getElementById(input.getAttribute("data-table"));
    var count = document.querySelector(".filter-count[data-table='" + input.getAttribute("data-table") + "']");
    input.addEventListener("input", function () {
      var q = input.value.trim().toLowerCase(), n = 0;
      Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
        var show = !q || r.textContent.toLowerCase().indexOf(q) >= 0;
        r.style.display = show ? "" : "none";
        if (show) n++;
      });
      if (count) count.textContent = q ? n + " shown" : "";
    });
  });
  var cards = document.getElementById("gallery-cards");
  if (cards) {
    var filter = document.getElementById("gallery-filter"), order = document.getElementById("gallery-sort");
    var count = document.getElementById("gallery-count");
    var update = function () {
      var want = filter.value, n = 0;
      var list = Array.prototype.slice.call(cards.children);
      list.forEach(function (c) {
        var s = c.getAttribute("data-status");
        var show = !want || s === want || (want === "not-used" && (s === "not-used" || s === "partly-used"));
        c.style.display = show ? "" : "none";
        if (show) n++;
      });
      var attr = order.value === "size" ? "data-size" : "data-pid";
      list.sort(function (a, b) {
        var x = parseFloat(a.getAttribute(attr)), y = parseFloat(b.getAttribute(attr));
        if (isNaN(x)) return 1;
        if (isNaN(y)) return -1;
        return x - y;
      });
      list.forEach(function (c) { cards.appendChild(c); });
      count.textContent = n + " of " + list.length + " shown";
    };
    filter.addEventListener("change", update);
    order.addEventListener("change", update);
    update();
  }
})();
