// The console's Statistics view: live tiles pushed by the node (Server-Sent Events), charts of
// a chosen period and time zone, and a table with its CSV download. Every figure comes from
// /designer/api/statistics, which answers what /v1/statistics answers (defined in the README).
import React, { useEffect, useMemo, useRef, useState } from "react";
import { ChartBox } from "./ChartBox.jsx";
import { LiveTiles, useLive } from "./LiveTiles.jsx";
import { OUTCOMES, OUTCOME_STYLE, outcomeFill, patternFill } from "./patterns.js";
import { getJson, statisticsUrl } from "./fetch.js";
import "./statistics.css";

function isoDay(d) {
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

function addDays(iso, n) {
  const d = new Date(`${iso}T12:00:00`);
  d.setDate(d.getDate() + n);
  return isoDay(d);
}

function daysBetween(a, b) {
  return Math.round((new Date(`${b}T12:00:00`) - new Date(`${a}T12:00:00`)) / 86400000) + 1;
}

function zones(current) {
  const all = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  return [...new Set(["UTC", current, ...all])];
}

const TABLE_GROUPS = {
  number: "Number", flow: "Flow", queue: "Queue", date: "Date", hour: "Hour of day",
  quarter: "Quarter hour of day", dow: "Day of week", outcome: "Outcome",
};
const HIDDEN_COLUMNS = new Set(["options"]);
const pct = (x) => (x === null || x === undefined ? "–" : `${Math.round(x * 100)}%`);
const sec = (x) => (x === null || x === undefined ? "–" : `${x} s`);

function Controls({ period, setPeriod, flows }) {
  const [draft, setDraft] = useState(period);
  const zoneList = useMemo(() => zones(period.tz), []);
  const set = (k) => (e) => setDraft({ ...draft, [k]: e.target.value });
  return (
    <form className="stats-controls" onSubmit={(e) => { e.preventDefault(); setPeriod(draft); }} aria-label="period">
      <label>From <input type="date" value={draft.from} onChange={set("from")} required aria-label="from" /></label>
      <label>To (included) <input type="date" value={draft.to} onChange={set("to")} required aria-label="to" /></label>
      <label>Time zone
        <select value={draft.tz} onChange={set("tz")} aria-label="time zone">
          {zoneList.map((z) => <option key={z} value={z}>{z}</option>)}
        </select>
      </label>
      <label>Flow
        <select value={draft.flow} onChange={set("flow")} aria-label="flow filter">
          <option value="">all flows</option>
          {flows.map((f) => <option key={f.name} value={f.name}>{f.name}</option>)}
        </select>
      </label>
      <label>Number <input value={draft.number} onChange={set("number")} placeholder="+32…" aria-label="number filter" size="14" /></label>
      <button type="submit" className="primary">Show</button>
    </form>
  );
}

function query(period, extra) {
  const params = { from: period.from, to: period.to, tz: period.tz, ...extra };
  if (period.flow) params.flow = period.flow;
  if (period.number && !["queue", "step"].some((g) => (extra.group_by || "").includes(g))) params.number = period.number;
  return params;
}

function hourLabel(row, perDay) {
  const h = `${String(row.hour).padStart(2, "0")}:00`;
  return perDay ? h : `${row.date.slice(5)} ${h}`;
}

function callsPerHourChart(doc, perDay, period) {
  const labels = [];
  const index = new Map();
  const keyOf = (r) => (perDay ? `${r.hour}` : `${r.date} ${r.hour}`);
  // Every hour of the period shows, calls or not: a gap is a figure too.
  const dates = perDay ? [null] : Array.from({ length: daysBetween(period.from, period.to) }, (_, i) => addDays(period.from, i));
  for (const date of dates) {
    for (let hour = 0; hour < 24; hour++) {
      const r = { date, hour };
      index.set(keyOf(r), labels.length);
      labels.push(hourLabel(r, perDay || dates.length === 1));
    }
  }
  for (const r of doc.rows) {
    const k = keyOf(r);
    if (!index.has(k)) { index.set(k, labels.length); labels.push(hourLabel(r, perDay || dates.length === 1)); }
  }
  const present = OUTCOMES.filter((o) => doc.rows.some((r) => r.outcome === o));
  const datasets = present.map((o) => {
    const data = new Array(labels.length).fill(0);
    for (const r of doc.rows) if (r.outcome === o) data[index.get(keyOf(r))] += r.calls;
    return { label: OUTCOME_STYLE[o].label, data, backgroundColor: outcomeFill(o), borderColor: OUTCOME_STYLE[o].color, borderWidth: 1 };
  });
  const summary = labels
    .map((l, i) => {
      const parts = datasets.filter((d) => d.data[i]).map((d) => `${d.label.split(" (")[0].toLowerCase()} ${d.data[i]}`);
      return parts.length ? `${l}: ${parts.join(", ")}` : "";
    })
    .filter(Boolean)
    .join("; ");
  return {
    config: {
      type: "bar",
      data: { labels, datasets },
      options: {
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "calls" } } },
        plugins: { legend: { position: "bottom" } },
      },
    },
    summary,
  };
}

function waitsChart(doc) {
  const rows = doc.rows.filter((r) => r.queue_entered > 0);
  const labels = rows.map((r) => r.queue);
  const sets = [
    { key: "avg_wait_s", label: "Average wait (s)", color: "#0072B2", pattern: "solid" },
    { key: "p90_wait_s", label: "9 in 10 callers waited at most (s)", color: "#E69F00", pattern: "diagonal" },
    { key: "avg_queue_answer_s", label: "Average wait of answered callers (s)", color: "#009E73", pattern: "dots" },
  ];
  const datasets = sets.map((s) => ({
    label: s.label, data: rows.map((r) => r[s.key] ?? 0), backgroundColor: patternFill(s.pattern, s.color), borderColor: s.color, borderWidth: 1,
  }));
  const summary = rows
    .map((r) => `${r.queue}: ${r.queue_entered} waited, ${r.queue_abandoned} hung up waiting, average ${sec(r.avg_wait_s)}, 9 in 10 within ${sec(r.p90_wait_s)}, service level ${pct(r.service_level)}`)
    .join("; ");
  return {
    config: {
      type: "bar",
      data: { labels, datasets },
      options: {
        scales: { y: { beginAtZero: true, grace: "12%", title: { display: true, text: "seconds" } } },
        plugins: { legend: { position: "bottom" }, valueLabels: { enabled: true } },
      },
    },
    summary,
  };
}

function funnelChart(doc, allFlows) {
  const rows = [...doc.rows].sort((a, b) => b.entered - a.entered);
  const name = (r) => (allFlows ? `${r.flow} · ${r.step}` : r.step);
  const labels = rows.map(name);
  const datasets = [
    { label: "Callers who reached the step", data: rows.map((r) => r.entered), backgroundColor: patternFill("solid", "#56B4E9"), borderColor: "#0072B2", borderWidth: 1 },
    { label: "Callers who hung up in it", data: rows.map((r) => r.abandoned), backgroundColor: patternFill("diagonal", "#D55E00"), borderColor: "#D55E00", borderWidth: 1 },
  ];
  const summary = rows.map((r) => `${name(r)}: ${r.entered} reached, ${r.abandoned} hung up there (${pct(r.drop_off_rate)})`).join("; ");
  return {
    config: {
      type: "bar",
      data: { labels, datasets },
      options: {
        indexAxis: "y",
        scales: { x: { beginAtZero: true, grace: "12%", ticks: { precision: 0 }, title: { display: true, text: "callers" } } },
        plugins: { legend: { position: "bottom" }, valueLabels: { enabled: true } },
      },
    },
    summary,
  };
}

function StatsTable({ period }) {
  const [group, setGroup] = useState("number");
  const [doc, setDoc] = useState(null);
  const [error, setError] = useState("");
  const params = query(period, { group_by: group });
  useEffect(() => {
    setError("");
    getJson("/calls", params).then(setDoc, (e) => setError(e.message));
  }, [JSON.stringify(params)]);
  const rows = doc ? doc.rows : [];
  const columns = rows.length ? Object.keys(rows[0]).filter((c) => !HIDDEN_COLUMNS.has(c)) : [];
  return (
    <section className="stats-table" aria-label="table">
      <div className="row">
        <h2>Table</h2>
        <label>Group by
          <select value={group} onChange={(e) => setGroup(e.target.value)} aria-label="group by">
            {Object.entries(TABLE_GROUPS).map(([k, v]) => <option key={k} value={k}>{v}</option>)}
          </select>
        </label>
        <a className="button" href={statisticsUrl("/calls", { ...params, format: "csv" })} download data-csv>Download CSV</a>
      </div>
      {error && <div className="problem error" role="alert">{error}</div>}
      {doc && rows.length === 0 && <p className="help">No calls in this period.</p>}
      {rows.length > 0 && (
        <div className="table-scroll">
          <table>
            <thead><tr>{columns.map((c) => <th key={c} scope="col">{c.replaceAll("_", " ")}</th>)}</tr></thead>
            <tbody>
              {rows.map((r, i) => (
                <tr key={i}>{columns.map((c) => <td key={c}>{r[c] === null ? "–" : String(r[c])}</td>)}</tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

// Bumps (at most every 5 s) when a live call ended: its figures are then in the rollups.
function useEndedCalls(board) {
  const [n, setN] = useState(0);
  const prev = useRef(null);
  const last = useRef(0);
  const timer = useRef(null);
  useEffect(() => {
    if (!board) return;
    const before = prev.current;
    prev.current = board.calls_up;
    if (before !== null && board.calls_up < before) {
      clearTimeout(timer.current);
      timer.current = setTimeout(() => { last.current = Date.now(); setN((x) => x + 1); }, Math.max(300, last.current + 5000 - Date.now()));
    }
  }, [board]);
  useEffect(() => () => clearTimeout(timer.current), []);
  return n;
}

export function StatisticsView({ flows }) {
  const today = isoDay(new Date());
  const [period, setPeriod] = useState({
    from: today, to: today, tz: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC", flow: "", number: "",
  });
  const [docs, setDocs] = useState({});
  const [error, setError] = useState("");
  const [board, liveState] = useLive();
  const ended = useEndedCalls(board);
  const perDay = daysBetween(period.from, period.to) > 2;
  useEffect(() => {
    setError("");
    const hourly = perDay ? "outcome,hour" : "outcome,date,hour";
    Promise.all([
      getJson("/calls", query(period, { group_by: hourly })),
      getJson("/calls", query(period, { group_by: "queue" })),
      getJson("/calls", query(period, { group_by: period.flow ? "step" : "flow,step" })),
      getJson("/calls", query(period, {})),
    ]).then(([hours, queues, steps, totals]) => setDocs({ hours, queues, steps, totals, period, perDay }), (e) => setError(e.message));
  }, [period, ended]);
  const hours = useMemo(() => docs.hours && callsPerHourChart(docs.hours, docs.perDay, docs.period), [docs.hours]);
  const waits = useMemo(() => docs.queues && waitsChart(docs.queues), [docs.queues]);
  const funnel = useMemo(() => docs.steps && funnelChart(docs.steps, !period.flow), [docs.steps]);
  const t = docs.totals && docs.totals.totals;
  return (
    <div className="statistics">
      <section aria-label="live">
        <h2>Now <span className={`live-state ${liveState}`} data-live-state={liveState}>{liveState}</span></h2>
        <LiveTiles board={board} />
      </section>
      <section aria-label="period">
        <h2>Period</h2>
        <Controls period={period} setPeriod={setPeriod} flows={flows} />
        {error && <div className="problem error" role="alert">{error}</div>}
        {t && (
          <p className="totals" data-totals>
            <strong>{t.offered}</strong> calls: {t.answered} answered, {t.abandoned} abandoned, {t.busy} busy, {t.no_answer} not answered, {t.failed} failed, {t.redirected} redirected, {t.ended_in_flow} ended by the flow; {t.rerouted} rerouted. Answer rate {pct(t.answer_rate)}, average speed of answer {sec(t.avg_speed_of_answer_s)}.
          </p>
        )}
        <div className="charts">
          {hours && <ChartBox id="hours" title={docs.perDay ? "Calls per hour of day, by outcome" : "Calls per hour, by outcome"} config={hours.config} summary={hours.summary} />}
          {waits && <ChartBox id="waits" title="Waiting in queues" config={waits.config} summary={waits.summary} />}
          {funnel && <ChartBox id="funnel" title="Steps of the call flow: where callers hang up" config={funnel.config} summary={funnel.summary} height={Math.max(200, 60 + 44 * docs.steps.rows.length)} />}
        </div>
      </section>
      <StatsTable period={period} />
    </div>
  );
}
