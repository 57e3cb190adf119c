(function(){
  function key(cell, numeric){
    var v = cell.getAttribute('data-value');
    if (numeric){ var x = parseFloat(v); return isNaN(x) ? -Infinity : x; }
    return (v === null ? cell.textContent : v).trim().toLowerCase();
  }
  function sortTable(table, col, th){
    var numeric = th.getAttribute('data-type') === 'num';
    var asc = th.getAttribute('aria-sort') !== 'ascending';
    var tbody = table.tBodies[0];
    var rows = Array.prototype.slice.call(tbody.rows);
    rows.forEach(function(r, i){ r._i = i; });
    rows.sort(function(a, b){
      var x = key(a.cells[col], numeric), y = key(b.cells[col], numeric);
      if (x < y) return asc ? -1 : 1;
      if (x > y) return asc ? 1 : -1;
      return a._i - b._i;
    });
    rows.forEach(function(r){ tbody.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function(h){ h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
  }
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function(table){
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function(th, col){
      th.addEventListener('click', function(){ sortTable(table, col, th); });
    });
  });
})();
