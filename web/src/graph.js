// From a flow document and the flow schema (flows/schema.json) to canvas nodes and edges.
// Outcomes (handles) come from the schema: a field whose schema says "the name of a step in
// this flow" is an outcome, and so is each key of a mapping of such fields (menu options,
// switch cases). A new verb thus appears on the canvas with no change here.
import { Graph, layout } from "@dagrejs/dagre";

export const STEP_REF = "the name of a step in this flow";
export const NODE_WIDTH = 230;

export function resolve(schema, node) {
  if (node && typeof node.$ref === "string" && node.$ref.startsWith("#/$defs/")) {
    return schema.$defs[node.$ref.slice(8)];
  }
  return node || {};
}

export function isRef(schema, node) {
  node = resolve(schema, node);
  if (node.type === "string" && node.description === STEP_REF) return true;
  return (node.anyOf || []).some((o) => o.type === "string" && isRef(schema, o));
}

// A list of step names (a webhook's next_steps: the answer picks one), maybe nullable.
export function isRefList(schema, node) {
  node = resolve(schema, node);
  const options = node.anyOf ? node.anyOf.map((o) => resolve(schema, o)) : [node];
  return options.some((o) => o.type === "array" && o.items && isRef(schema, o.items));
}

export function isRefMap(schema, node) {
  node = resolve(schema, node);
  return node.type === "object" && node.additionalProperties && isRef(schema, node.additionalProperties);
}

// verb name -> its schema definition, read from steps.additionalProperties.oneOf
export function verbDefs(schema) {
  const out = {};
  for (const variant of schema.properties.steps.additionalProperties.oneOf) {
    const verb = variant.title;
    const body = variant.properties[verb];
    const options = body.anyOf || [body];
    const ref = options.find((o) => o.$ref);
    out[verb] = resolve(schema, ref);
  }
  return out;
}

// An outcome's words on the canvas: on_no_answer -> "no answer", when_open -> "open".
const WORDS = { then: "next", default: "otherwise", on_error: "if it fails" };
export function outcomeWords(prop) {
  if (WORDS[prop]) return WORDS[prop];
  return prop.replace(/^(on|when)_/, "").replace(/_/g, " ");
}

// A handle id safe inside a CSS selector (React Flow looks handles up with one).
export function slotId(path) {
  return "o-" + path.map((p) => encodeURIComponent(String(p)).replace(/\./g, "%2E").replace(/'/g, "%27")).join(".");
}

// Every outcome slot of a step: {id, label, path, target}
export function slots(schema, def, body) {
  const out = [];
  const props = def.properties || {};
  const names = Object.keys(props).filter((p) => p !== "on_error").concat(props.on_error ? ["on_error"] : []);
  for (const prop of names) {
    const ps = props[prop];
    if (isRef(schema, ps)) {
      // "if it fails" is drawn only when set (the form sets it): every verb has it.
      if (prop === "on_error" && !body[prop]) continue;
      out.push({ id: slotId([prop]), label: outcomeWords(prop), path: [prop], target: body[prop] ?? null });
    } else if (isRefList(schema, ps)) {
      const list = Array.isArray(body[prop]) ? body[prop] : [];
      list.forEach((target, i) => {
        out.push({ id: slotId([prop, i]), label: `${outcomeWords(prop)} ${i + 1}`, path: [prop, i], target });
      });
    } else if (isRefMap(schema, ps)) {
      const map = body[prop] && typeof body[prop] === "object" ? body[prop] : {};
      for (const key of Object.keys(map)) {
        const label = prop === "options" ? `key ${key}` : `${key}`;
        out.push({ id: slotId([prop, key]), label, path: [prop, key], target: map[key] });
      }
    }
  }
  return out;
}

// The step's verb and its fields, shorthands (goto: menu, hangup:) made into mappings the way
// the server's coerce does (the server sends steps already coerced; this is the fallback).
export function stepsOf(state) {
  return state.steps || [];
}

const SUMMARY_FIELDS = ["prompt", "say", "targets", "url", "variable", "timezone", "name", "step", "to", "target", "set"];

export function summary(body) {
  const parts = [];
  for (const f of SUMMARY_FIELDS) {
    const v = body[f];
    if (v === undefined || v === null) continue;
    let text = Array.isArray(v) ? v.join(", ") : typeof v === "object" ? Object.entries(v).map(([k, x]) => `${k}=${x}`).join(", ") : String(v);
    if (text.length > 60) text = text.slice(0, 57) + "...";
    parts.push(`${f}: ${text}`);
    if (parts.length === 2) break;
  }
  return parts;
}

export function buildGraph(schema, defs, state) {
  const nodes = [];
  const edges = [];
  const steps = stepsOf(state);
  const names = new Set(steps.map((s) => s.name));
  const byStep = {};
  for (const p of state.problems || []) {
    if (!p.step) continue;
    (byStep[p.step] = byStep[p.step] || []).push(p);
  }
  nodes.push({ id: "__start", type: "start", data: { label: "A call comes in" }, position: { x: 0, y: 0 }, selectable: false, draggable: false });
  const start = state.doc && state.doc.start;
  if (start && names.has(start)) {
    edges.push({ id: "e:__start", source: "__start", target: start, label: "start", type: "smoothstep" });
  }
  for (const step of steps) {
    const def = defs[step.verb] || { properties: {} };
    const body = step.body && typeof step.body === "object" ? step.body : {};
    const stepSlots = slots(schema, def, body);
    nodes.push({
      id: step.name,
      type: "step",
      position: { x: 0, y: 0 },
      data: { name: step.name, verb: step.verb, body, slots: stepSlots, problems: byStep[step.name] || [] },
      ariaLabel: `step ${step.name}, ${step.verb}`,
    });
    // Outcomes that go to the same step: one edge, its label listing them.
    const grouped = new Map();
    for (const slot of stepSlots) {
      if (!slot.target || !names.has(slot.target)) continue;
      const g = grouped.get(slot.target) || [];
      g.push(slot);
      grouped.set(slot.target, g);
    }
    for (const [target, group] of grouped) {
      edges.push({
        id: `e:${step.name}->${target}`,
        source: step.name,
        sourceHandle: group[0].id,
        target,
        label: group.map((s) => s.label).join(", "),
        type: "smoothstep",
        data: { paths: group.map((s) => s.path) },
      });
    }
  }
  return { nodes, edges };
}

export function nodeHeight(node) {
  if (node.type === "start") return 40;
  const n = node.data.slots.length;
  return 74 + Math.ceil(n / 3) * 22;
}

// The edges that place the steps: a breadth-first tree from the call's start. Every other
// edge (back to the menu, down to a shared "goodbye" step) is drawn but does not pull the
// layout: given to dagre, each long one becomes a chain of dummy nodes, and a 200-step flow
// whose steps all end at one hang-up step took a minute to lay out instead of milliseconds.
export function treeEdges(nodes, edges) {
  const out = new Map();
  for (const e of edges) {
    if (!out.has(e.source)) out.set(e.source, []);
    out.get(e.source).push(e);
  }
  const seen = new Set(["__start"]);
  const queue = ["__start"];
  const tree = [];
  for (let i = 0; i < queue.length; i++) {
    for (const e of out.get(queue[i]) || []) {
      if (seen.has(e.target)) continue;
      seen.add(e.target);
      queue.push(e.target);
      tree.push(e);
    }
  }
  return tree;
}

export function applyLayout(nodes, edges) {
  const g = new Graph();
  g.setGraph({ rankdir: "TB", nodesep: 40, ranksep: 70 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of nodes) g.setNode(n.id, { width: n.type === "start" ? 160 : NODE_WIDTH, height: nodeHeight(n) });
  for (const e of treeEdges(nodes, edges)) g.setEdge(e.source, e.target);
  layout(g);
  return nodes.map((n) => {
    const p = g.node(n.id);
    const w = n.type === "start" ? 160 : NODE_WIDTH;
    return { ...n, position: { x: p.x - w / 2, y: p.y - nodeHeight(n) / 2 } };
  });
}
