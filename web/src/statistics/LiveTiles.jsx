// The live tiles: calls up per number and flow, callers waiting per queue with the longest wait,
// agents ringing or talking, calls per minute over the last hour. Pushed by the node as
// Server-Sent Events; waits tick here between two pushes.
import React, { useEffect, useState } from "react";
import { ChartBox } from "./ChartBox.jsx";
import { getJson, statisticsUrl } from "./fetch.js";
import { patternFill } from "./patterns.js";

export function useLive() {
  const [board, setBoard] = useState(null);
  const [state, setState] = useState("connecting");
  useEffect(() => {
    let poller = null;
    const es = new EventSource(statisticsUrl("/live/stream"));
    es.addEventListener("live", (e) => {
      const b = JSON.parse(e.data);
      b.received = Date.now();
      setBoard(b);
      setState("live");
    });
    es.addEventListener("closed", (e) => {
      if (JSON.parse(e.data).why === "logged out") window.location.href = "/designer/login";
      else setState("reconnecting");
    });
    es.onerror = () => {
      if (es.readyState !== EventSource.CLOSED) return setState("reconnecting");
      // The stream was refused (too many open, or the node is stopping): ask now and then.
      setState("polling");
      poller = poller || setInterval(() => getJson("/live").then((b) => setBoard({ ...b, received: Date.now() }), () => {}), 10000);
    };
    return () => {
      es.close();
      if (poller) clearInterval(poller);
    };
  }, []);
  return [board, state];
}

function useTick(ms) {
  const [, set] = useState(0);
  useEffect(() => {
    const t = setInterval(() => set((n) => n + 1), ms);
    return () => clearInterval(t);
  }, [ms]);
}

function Tile({ id, title, value, children }) {
  return (
    <div className="tile" data-tile={id}>
      <div className="tile-title">{title}</div>
      <div className="tile-value" data-value={id}>{value}</div>
      {children}
    </div>
  );
}

function minutesChart(board) {
  const counts = board.calls_per_minute;
  const labels = counts.map((_, i) => (i === 59 ? "now" : `-${59 - i} min`));
  return {
    type: "bar",
    data: { labels, datasets: [{ label: "Calls started", data: counts, backgroundColor: patternFill("solid", "#0072B2") }] },
    options: { plugins: { legend: { display: false } }, scales: { x: { ticks: { maxTicksLimit: 7 } }, y: { beginAtZero: true, ticks: { precision: 0 } } } },
  };
}

export function LiveTiles({ board }) {
  useTick(1000);
  if (!board) return <p className="help">Connecting to the live figures…</p>;
  const since = (Date.now() - board.received) / 1000;
  const waiting = board.queues.reduce((n, q) => n + q.waiting, 0);
  const lastMinutes = board.calls_per_minute.slice(-5).reduce((a, b) => a + b, 0);
  return (
    <>
      <div className="tiles">
        <Tile id="calls-up" title="Calls up now" value={board.calls_up}>
          <ul className="tile-list">
            {board.by_number.map((r) => <li key={`${r.number} ${r.flow}`}>{r.number} <span className="muted">{r.flow || "no flow"}</span>: {r.calls}</li>)}
          </ul>
        </Tile>
        <Tile id="waiting" title="Callers waiting in queues" value={waiting}>
          <ul className="tile-list">
            {board.queues.map((q) => (
              <li key={q.queue}>{q.queue}: {q.waiting} waiting, longest {Math.round(q.longest_wait_s + (q.waiting ? since : 0))} s</li>
            ))}
          </ul>
        </Tile>
        <Tile id="agents" title="Agents ringing / talking" value={`${board.agents_ringing} / ${board.agents_talking}`}>
          <ul className="tile-list">
            {board.agents.map((a) => <li key={a.target}>{a.target}: {a.state}</li>)}
          </ul>
        </Tile>
        <Tile id="per-minute" title="Calls started, last hour" value={board.calls_last_hour}>
          <div className="muted">{lastMinutes} in the last 5 minutes</div>
        </Tile>
      </div>
      <ChartBox id="per-minute" title="Calls started per minute, last hour" config={minutesChart(board)} height={120}
        summary={`${board.calls_last_hour} calls in the last hour, ${lastMinutes} in the last 5 minutes`} />
      {board.nodes && board.nodes.length > 1 && (
        <p className="help">Across {board.nodes.length} nodes: {board.nodes.map((n) => `${n.node} ${n.calls_up} up`).join(", ")}.</p>
      )}
    </>
  );
}
