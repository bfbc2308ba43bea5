// One Chart.js chart as a React component, with a text alternative: the figure's caption says
// every value in words (screen readers, people who cannot tell the fills apart, and tests).
import React, { useEffect, useRef } from "react";
import {
  Chart, BarController, BarElement, CategoryScale, LinearScale, Legend, Tooltip,
} from "chart.js";

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Legend, Tooltip);

// Writes each bar's value at its end (horizontal charts), so no value needs a colour or hover.
const valueLabels = {
  id: "valueLabels",
  afterDatasetsDraw(chart, _args, options) {
    if (!options || !options.enabled) return;
    const { ctx } = chart;
    ctx.save();
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillStyle = "#1d2733";
    ctx.textBaseline = "middle";
    chart.data.datasets.forEach((ds, i) => {
      const meta = chart.getDatasetMeta(i);
      if (meta.hidden) return;
      meta.data.forEach((bar, j) => {
        const text = options.format ? options.format(ds, j) : String(ds.data[j] ?? "");
        if (!text) return;
        const horizontal = chart.options.indexAxis === "y";
        if (horizontal) ctx.fillText(text, bar.x + 4, bar.y);
        else { ctx.textAlign = "center"; ctx.fillText(text, bar.x, bar.y - 8); }
      });
    });
    ctx.restore();
  },
};
Chart.register(valueLabels);

export function ChartBox({ id, title, config, summary, height = 280 }) {
  const canvas = useRef(null);
  const chart = useRef(null);
  useEffect(() => {
    chart.current = new Chart(canvas.current, { ...config, options: { ...config.options, animation: false, responsive: true, maintainAspectRatio: false } });
    return () => chart.current.destroy();
  }, []);
  useEffect(() => {
    const c = chart.current;
    if (!c) return;
    c.data = config.data;
    c.options = { ...config.options, animation: false, responsive: true, maintainAspectRatio: false };
    c.update();
  }, [config]);
  return (
    <figure className="chart" data-chart={id}>
      <figcaption><strong>{title}</strong></figcaption>
      <div className="chart-canvas" style={{ height }}>
        <canvas ref={canvas} role="img" aria-label={`${title}: ${summary || "no calls in this period"}`} />
      </div>
      <p className="chart-summary" data-summary={id}>{summary || "No calls in this period."}</p>
    </figure>
  );
}
