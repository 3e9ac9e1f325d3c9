(function () {
  function key(cell, type) {
    var raw = cell ? cell.getAttribute("data-sort") : "";
    if (type === "num") { var v = parseFloat(raw); return isNaN(v) ? null : v; }
    return (raw || "").toLowerCase();
  }
  function sortTable(table, index, th) {
    var body = table.tBodies[0];
    var type = th.getAttribute("data-type");
    var dir = th.getAttribute("aria-sort") === "descending" ? "ascending" : "descending";
    if (type === "text" && !th.hasAttribute("aria-sort")) { dir = "ascending"; }
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[index], type), y = key(b.cells[index], type);
      if (x === y) { return 0; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      return (x < y ? -1 : 1) * (dir === "ascending" ? 1 : -1);
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      th.tabIndex = 0;
      th.addEventListener("click", function () { sortTable(table, index, th); });
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sortTable(table, index, th); } });
    });
  });
  document.documentElement.setAttribute("data-sortable", "ready");
})();
