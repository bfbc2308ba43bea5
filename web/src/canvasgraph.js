// The canvas's nodes and edges, kept from one answer to the next. An edit's answer carries only
// the steps it changed (the others keep their objects), so only those steps get new nodes and
// edges; React Flow compares its nodes by identity and redraws just them. The layout runs
// again only when the shape changed (a step added, removed or renamed, an outcome sent
// elsewhere, a step's height); otherwise every position is kept.
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { useUpdateNodeInternals } from "@xyflow/react";
import { stepGraph, START_NODE, startEdge, problemsByStep, applyLayout, nodeHeight, NODE_WIDTH } from "./graph.js";

// An edit's answer asked with "answer": "changes" made whole again: the steps it names
// replace those of the same name, `step_names` (sent when the steps or their order changed)
// gives the order, and every other step keeps its object.
// The text comes as `text_patch`: the lines of the text before that it replaces (only "\n"
// ends a line, as on the node).
export function mergeAnswer(before, answer) {
  if (!answer.steps_changed) return answer;
  const { steps_changed: changed, step_names: names, text_patch: patch, ...rest } = answer;
  const byName = new Map(before.steps.map((s) => [s.name, s]));
  for (const s of changed) byName.set(s.name, s);
  const order = names || before.steps.map((s) => s.name);
  const lines = before.text.match(/[^\n]*\n|[^\n]+$/g) || [];
  const text = lines.slice(0, patch.from).concat(patch.lines, lines.slice(patch.to)).join("");
  return { ...rest, text, steps: order.map((n) => byName.get(n)) };
}

// Whether a text is the one an ETag names (SHA-256, as the node makes them). Browsers give
// digests only on secure pages (HTTPS, localhost): elsewhere the patch is trusted.
export async function textMatches(text, etag) {
  if (!globalThis.crypto?.subtle) return true;
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("") === etag;
}

const NONE = [];

export function newGraphCache() {
  return { names: null, start: undefined, startEdge: null, steps: new Map(), positions: null, placed: new Map() };
}

// {nodes, edges, laidOut, rebuilt}: the objects of last time for what did not change.
export function graphOf(schema, defs, state, cache) {
  const steps = state.steps || [];
  const nameKey = steps.map((s) => s.name).join("\n");
  let shapeChanged = cache.positions === null;
  if (nameKey !== cache.names) {
    // Edges depend on which steps exist: every step is drawn again (and laid out).
    cache.steps.clear();
    cache.placed.clear();
    cache.names = nameKey;
    shapeChanged = true;
  }
  const names = new Set(steps.map((s) => s.name));
  const byStep = problemsByStep(state.problems);
  const start = state.header ? state.header.start : null;
  if (start !== cache.start || shapeChanged) {
    if (start !== cache.start) shapeChanged = true;
    cache.start = start;
    cache.startEdge = start && names.has(start) ? startEdge(start) : null;
  }
  const nodes = [START_NODE];
  const edges = cache.startEdge ? [cache.startEdge] : [];
  let rebuilt = 0;
  for (const step of steps) {
    const problems = byStep[step.name] || NONE;
    const said = problems === NONE ? "" : JSON.stringify(problems); // lines move when text does
    let c = cache.steps.get(step.name);
    if (!c || c.step !== step || c.said !== said) {
      const g = stepGraph(schema, defs, step, problems, names);
      const shape = `${nodeHeight(g.node)}>${g.edges.map((e) => e.target).join(",")}`;
      if (!c || c.shape !== shape) shapeChanged = true;
      c = { step, said, shape, ...g };
      cache.steps.set(step.name, c);
      rebuilt += 1;
    }
    nodes.push(c.node);
    for (const e of c.edges) edges.push(e);
  }
  if (shapeChanged) cache.positions = new Map(applyLayout(nodes, edges).map((n) => [n.id, n.position]));
  const placed = nodes.map((n) => {
    const p = cache.positions.get(n.id);
    const old = cache.placed.get(n.id);
    if (old && old.base === n && old.x === p.x && old.y === p.y) return old.out;
    const out = { ...n, position: p };
    cache.placed.set(n.id, { base: n, x: p.x, y: p.y, out });
    return out;
  });
  return { nodes: placed, edges, laidOut: shapeChanged, rebuilt };
}

// What React Flow is given: the steps with their selection, search and simulation marks, the
// notes, and the edges near the view. A node whose object and marks did not change is the
// same object as before.
//
// A changed node keeps the size React Flow measured (it reports sizes through onNodesChange):
// without it React Flow hides the node until it measures it again, and a measurement that
// lands between two changes of the node was lost, leaving it hidden for good (a sticky note
// vanished after a rename, once in a busy CI run). A step whose outcome chips changed is
// measured again (updateNodeInternals), its handles with it.
export function useCanvas(graph, { selected, q, matches, lit, notes, near }) {
  const kept = useRef(new Map());
  const keptEdges = useRef(new Map());
  const measured = useRef(new Map());
  const remeasure = useRef(new Set());
  const updateInternals = useUpdateNodeInternals();
  const onNodesChange = useCallback((changes) => {
    for (const c of changes) if (c.type === "dimensions" && c.dimensions) measured.current.set(c.id, c.dimensions);
  }, []);
  const handlesOf = (n) => (n.data?.slots || []).map((x) => x.id).join(" ");
  const keep = (id, base, marks, make) => {
    const old = kept.current.get(id);
    if (old && old.base === base && old.marks === marks) return old.out;
    let out = make();
    const size = measured.current.get(id);
    if (old && size && handlesOf(old.out) === handlesOf(out)) out = { ...out, measured: size };
    else if (old) remeasure.current.add(id);
    kept.current.set(id, { base, marks, out });
    return out;
  };
  const nodes = useMemo(() => {
    const out = graph.nodes.map((n) => {
      if (n.type !== "step") return keep(n.id, n, "", () => n);
      const sel = n.id === selected, dim = q ? !matches.has(n.id) : false, match = q ? matches.has(n.id) : false;
      const marks = `${sel}|${dim}|${match}|${lit[n.id] || ""}`;
      return keep(n.id, n, marks, () => ({ ...n, selected: sel, data: { ...n.data, dim, match, lit: lit[n.id] } }));
    });
    // Notes are few: compared by what they say and where they are.
    for (const n of notes) out.push(keep(n.id, null, JSON.stringify(n), () => n));
    return out;
  }, [graph, selected, q, matches, lit, notes]);
  useEffect(() => {
    if (!remeasure.current.size) return;
    updateInternals([...remeasure.current]);
    remeasure.current.clear();
  }, [nodes]);
  const edges = useMemo(() => graph.edges
    .filter((e) => !near || near.has(e.source) || near.has(e.target))
    .map((e) => {
      const on = !!(lit[e.source] && lit[e.target]);
      const old = keptEdges.current.get(e.id);
      if (old && old.base === e && old.on === on) return old.out;
      const out = { ...e, animated: on, className: on ? "lit" : "" };
      keptEdges.current.set(e.id, { base: e, on, out });
      return out;
    }), [graph, lit, near]);
  return { nodes, edges, onNodesChange };
}

// Only the edges that touch a step in view (or near it) are drawn. React Flow's own culling
// keeps every edge whose box crosses the view, and in a big flow the outcomes that all go
// to one last step cross it from everywhere: 119 labelled edges drawn (each label measured
// with getBBox) for 14 steps in view, most of the time of opening a 200-step flow.
export function useNear(graph, ready) {
  const canvasRef = useRef(null);
  const [near, setNear] = useState(null); // ids of the steps in or near the view; null: all
  const nearKey = useRef("");
  // The canvas's size, kept by an observer: reading clientWidth while React Flow moves the
  // view forces a layout of the whole page on every frame.
  const canvasSize = useRef({ width: 1200, height: 800 });
  useEffect(() => {
    const box = canvasRef.current;
    if (!box) return undefined;
    canvasSize.current = { width: box.clientWidth, height: box.clientHeight };
    const observer = new ResizeObserver(([entry]) => { canvasSize.current = { width: entry.contentRect.width, height: entry.contentRect.height }; });
    observer.observe(box);
    return () => observer.disconnect();
  }, [ready]);
  const updateNear = useCallback((vp) => {
    if (graph.nodes.length <= 60) { if (nearKey.current !== "") { nearKey.current = ""; setNear(null); } return; }
    const w = canvasSize.current.width / vp.zoom, h = canvasSize.current.height / vp.zoom;
    const left = -vp.x / vp.zoom - w / 2, top = -vp.y / vp.zoom - h / 2;
    const ids = graph.nodes.filter((n) => n.position.x + NODE_WIDTH >= left && n.position.x <= left + 2 * w && n.position.y + nodeHeight(n) >= top && n.position.y <= top + 2 * h).map((n) => n.id);
    const key = ids.join("|");
    if (key !== nearKey.current) { nearKey.current = key; setNear(new Set(ids)); }
  }, [graph]);
  return { canvasRef, near, updateNear };
}
