// Draws every dashboard panel from the same table the page (and the export) shows.
document.addEventListener("DOMContentLoaded", function () {
  var panels = JSON.parse(document.getElementById("dashboard-data").textContent);
  function numeric(panel) {
    return panel.columns.map(function (c, i) { return i; }).filter(function (i) {
      var c = panel.columns[i];
      return i > 0 && c.unit !== "%" && panel.rows.length && typeof panel.rows[0][i] === "number" && c.key !== "id" && c.key !== "customer_id";
    });
  }
  function value(panel, i, v) { return panel.columns[i].unit === "fen" && v !== null ? v / 100 : v; }
  function option(panel) {
    var labels = panel.rows.map(function (r) { return String(r[0]); });
    if (panel.chart === "pie") {
      return {tooltip: {trigger: "item"}, series: [{type: "pie", radius: ["40%", "70%"],
        data: panel.rows.map(function (r) { return {name: r[0], value: r[1]}; })}]};
    }
    if (panel.chart === "funnel" && panel.extra.totals) {
      var names = panel.columns.slice(1, 6);
      return {tooltip: {trigger: "item"}, series: [{type: "funnel", sort: "none",
        data: names.map(function (c) { return {name: c.label, value: panel.extra.totals[c.key]}; })}]};
    }
    if (panel.chart === "heatmap") {
      var xs = panel.columns.slice(2).map(function (c) { return c.label; }), cells = [];
      panel.rows.forEach(function (r, y) { r.slice(2).forEach(function (v, x) { if (v !== null) cells.push([x, y, Math.round(v * 1000) / 10]); }); });
      return {tooltip: {position: "top"}, grid: {left: 90, right: 16, top: 16, bottom: 60},
        xAxis: {type: "category", data: xs}, yAxis: {type: "category", data: labels},
        visualMap: {min: 0, max: 100, orient: "horizontal", left: "center", bottom: 0, calculable: true},
        series: [{type: "heatmap", data: cells, label: {show: true}}]};
    }
    if (panel.key === "sop") {
      return {tooltip: {trigger: "axis"}, xAxis: {type: "category", data: panel.rows.map(function (r) { return r[0] + " · " + r[2]; })},
        yAxis: {type: "value", minInterval: 1}, series: [{type: "bar", data: panel.rows.map(function (r) { return r[3]; })}]};
    }
    var type = panel.chart === "line" ? "line" : "bar";
    return {tooltip: {trigger: "axis"}, legend: {type: "scroll", top: 0}, grid: {left: 48, right: 16, top: 36, bottom: 28},
      xAxis: {type: "category", data: labels}, yAxis: {type: "value"},
      series: numeric(panel).map(function (i) {
        return {name: panel.columns[i].label, type: type, smooth: type === "line",
          data: panel.rows.map(function (r) { return value(panel, i, r[i]); })};
      })};
  }
  var charts = [];
  document.querySelectorAll(".dashboard-chart").forEach(function (el) {
    var panel = panels.find(function (p) { return p.key === el.dataset.panel; });
    var chart = echarts.init(el);
    chart.setOption(option(panel));
    charts.push(chart);
  });
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
});
