// From a flow document and the flow schema (flows/schema.json) to canvas nodes and edges.
// Outcomes (handles) come from the schema: a field whose schema says "the name of a step in
// this flow" is an outcome, and so is each key of a mapping of such fields (menu options,
// switch cases). A new verb thus appears on the canvas with no change here.

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

// One step's canvas node and its edges (outcomes that go to the same step: one edge, its
// label listing them). `names`: the flow's step names (an outcome to no step draws no edge).
export function stepGraph(schema, defs, step, problems, names) {
  const def = defs[step.verb] || { properties: {} };
  const body = step.body && typeof step.body === "object" ? step.body : {};
  const stepSlots = slots(schema, def, body);
  const node = {
    id: step.name,
    type: "step",
    position: { x: 0, y: 0 },
    data: { name: step.name, verb: step.verb, body, slots: stepSlots, problems },
    ariaLabel: `step ${step.name}, ${step.verb}`,
  };
  const grouped = new Map();
  for (const slot of stepSlots) {
    if (!slot.target || !names.has(slot.target)) continue;
    const g = grouped.get(slot.target) || [];
    g.push(slot);
    grouped.set(slot.target, g);
  }
  const edges = [];
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
  return { node, edges };
}

export const START_NODE = { id: "__start", type: "start", data: { label: "A call comes in" }, position: { x: 0, y: 0 }, selectable: false, draggable: false };

export function startEdge(start) {
  return { id: "e:__start", source: "__start", target: start, label: "start", type: "smoothstep" };
}

export function problemsByStep(problems) {
  const byStep = {};
  for (const p of problems || []) {
    if (!p.step) continue;
    (byStep[p.step] = byStep[p.step] || []).push(p);
  }
  return byStep;
}

export function nodeHeight(node) {
  if (node.type === "start") return 40;
  const n = node.data.slots.length;
  return 74 + Math.ceil(n / 3) * 22;
}

// The edges that place the steps: each step hangs under one step of the row above it. Rows
// are the longest way down from the call's start (loops back to a menu do not count), so a
// step that many outcomes end at ("goodbye") sits below all of them, not at the top with its
// edges crossing the whole canvas. Every other edge is drawn but does not pull the layout.
export function treeEdges(nodes, edges) {
  const out = new Map();
  for (const e of edges) {
    if (!out.has(e.source)) out.set(e.source, []);
    out.get(e.source).push(e);
  }
  // Depth-first from the start, iteratively: an edge to a step still being walked loops back.
  const state = new Map([["__start", 1]]);
  const stack = [["__start", 0]];
  const post = [];
  const forward = [];
  while (stack.length) {
    const top = stack[stack.length - 1];
    const list = out.get(top[0]) || [];
    if (top[1] >= list.length) {
      state.set(top[0], 2);
      post.push(top[0]);
      stack.pop();
      continue;
    }
    const e = list[top[1]++];
    const s = state.get(e.target);
    if (s === 1) continue; // a loop back
    forward.push(e);
    if (s === undefined) {
      state.set(e.target, 1);
      stack.push([e.target, 0]);
    }
  }
  const isForward = new Set(forward);
  const rank = new Map([["__start", 0]]);
  const incoming = new Map();
  for (const e of forward) {
    if (!incoming.has(e.target)) incoming.set(e.target, []);
    incoming.get(e.target).push(e);
  }
  const order = post.reverse(); // a topological order of the forward edges
  for (const id of order) {
    for (const e of out.get(id) || []) {
      if (isForward.has(e)) rank.set(e.target, Math.max(rank.get(e.target) || 0, rank.get(id) + 1));
    }
  }
  const tree = new Set();
  for (const id of order) {
    if (id === "__start") continue;
    const parent = (incoming.get(id) || []).find((e) => rank.get(e.source) === rank.get(id) - 1);
    if (parent) tree.add(parent);
  }
  return edges.filter((e) => tree.has(e)); // in the outcomes' order: children left to right
}

// A tidy tree (each leaf its own column, a parent centred over its children, one row per
// depth) over the breadth-first tree above: linear in the steps. dagre laid the same tree out
// in 240-700 ms for 200 steps on this machine (its ranking and crossing minimisation are
// for general graphs; a tree has no crossings to minimise); this takes about a millisecond.
const COLUMN = NODE_WIDTH + 40;
const ROW_GAP = 70;

export function applyLayout(nodes, edges) {
  const children = new Map();
  for (const e of treeEdges(nodes, edges)) {
    if (!children.has(e.source)) children.set(e.source, []);
    children.get(e.source).push(e.target);
  }
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const depth = new Map();
  const x = new Map();
  let column = 0;
  // Steps no call reaches hang beside the tree, as their own roots.
  const reached = new Set();
  const roots = ["__start", ...nodes.map((n) => n.id).filter((id) => id !== "__start")];
  for (const root of roots) {
    if (reached.has(root) || !byId.has(root)) continue;
    // Iterative post-order: a 2,000-step chain must not overflow the stack.
    const stack = [[root, 0, false]];
    while (stack.length) {
      const [id, d, done] = stack.pop();
      const kids = (children.get(id) || []).filter((k) => byId.has(k));
      if (!done) {
        reached.add(id);
        depth.set(id, d);
        stack.push([id, d, true]);
        for (let i = kids.length - 1; i >= 0; i--) if (!reached.has(kids[i])) stack.push([kids[i], d + 1, false]);
        continue;
      }
      const placed = kids.filter((k) => x.has(k) && depth.get(k) === d + 1);
      x.set(id, placed.length ? (x.get(placed[0]) + x.get(placed[placed.length - 1])) / 2 : column++);
    }
  }
  const rowHeight = [];
  for (const n of nodes) {
    const d = depth.get(n.id) || 0;
    rowHeight[d] = Math.max(rowHeight[d] || 0, nodeHeight(n));
  }
  const rowY = [0];
  for (let d = 1; d < rowHeight.length; d++) rowY[d] = rowY[d - 1] + (rowHeight[d - 1] || 0) + ROW_GAP;
  return nodes.map((n) => {
    const w = n.type === "start" ? 160 : NODE_WIDTH;
    const d = depth.get(n.id) || 0;
    return { ...n, position: { x: x.get(n.id) * COLUMN + (NODE_WIDTH - w) / 2, y: rowY[d] } };
  });
}
