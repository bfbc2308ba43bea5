// The FlexVoice call flow designer: one page, talking to /designer/api on the node.
import React, { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { createRoot } from "react-dom/client";
import { ReactFlow, ReactFlowProvider, Background, Controls, Handle, Position, useReactFlow } from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import "./designer.css";
import { buildGraph, applyLayout, nodeHeight, verbDefs, isRef, isRefMap, isRefList, resolve, summary, outcomeWords, NODE_WIDTH } from "./graph.js";

// ---- talking to the node ---------------------------------------------------------------------

let CSRF = "";

class ApiError extends Error {
  constructor(status, doc) {
    super((doc && doc.detail) || `the node answered ${status}`);
    this.status = status;
    this.doc = doc || {};
  }
}

async function api(path, { method = "GET", body, etag } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    headers["X-CSRF-Token"] = CSRF;
  }
  if (etag) headers["If-Match"] = `"${etag}"`;
  const r = await fetch(`/designer/api${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
  if (r.status === 401) {
    window.location.href = "/designer/login";
    throw new ApiError(401, { detail: "logged out" });
  }
  const doc = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, doc);
  return doc;
}

const VERB_WORDS = {
  answer: "Answer the call", play: "Play a message", menu: "Menu (press a key)", gather: "Collect digits",
  dial: "Ring phones", queue: "Wait in a queue", hours: "Opening hours", switch: "Choose by value",
  record: "Voicemail / record", redirect: "Forward elsewhere", goto: "Go to a step", hangup: "Hang up",
  set: "Set a variable", webhook: "Ask your system (webhook)",
};

// ---- canvas nodes ----------------------------------------------------------------------------

function StepNode({ data, selected }) {
  const errors = data.problems.filter((p) => p.severity === "error");
  const warnings = data.problems.filter((p) => p.severity !== "error");
  const cls = ["step", `verb-${data.verb}`, selected ? "selected" : "", data.dim ? "dim" : "", data.match ? "match" : "", data.lit ? "lit" : ""].join(" ");
  return (
    <div className={cls} data-step={data.name} style={{ width: NODE_WIDTH }}>
      <Handle type="target" position={Position.Top} />
      <div className="step-head">
        <span className="step-name">{data.name}</span>
        <span className="verb">{data.verb}</span>
        {errors.length > 0 && (
          <span className="badge error" title={errors.map((p) => p.message).join("\n")} data-badge="error">{errors.length}</span>
        )}
        {warnings.length > 0 && errors.length === 0 && (
          <span className="badge warning" title={warnings.map((p) => p.message).join("\n")} data-badge="warning">!</span>
        )}
        {data.lit && <span className="lit-order">{data.lit}</span>}
      </div>
      <div className="step-words">{VERB_WORDS[data.verb] || data.verb}</div>
      {summary(data.body).map((line) => (
        <div className="step-field" key={line}>{line}</div>
      ))}
      <div className="outcomes">
        {data.slots.map((slot) => (
          // The outcome's chip is its handle: a large target to drag from.
          <Handle key={slot.id} type="source" position={Position.Bottom} id={slot.id}
            className={`outcome-handle ${slot.target ? "set" : ""}`} data-handle={slot.path.join(".")}
            title={slot.target ? `${slot.label}: goes to ${slot.target} (drag to change)` : `${slot.label}: drag to a step`}>
            {slot.label}
          </Handle>
        ))}
      </div>
    </div>
  );
}

function StartNode({ data }) {
  return (
    <div className="start-node">
      {data.label}
      <Handle type="source" position={Position.Bottom} />
    </div>
  );
}

const NODE_TYPES = { step: StepNode, start: StartNode };

// ---- forms generated from the schema ---------------------------------------------------------

function kindOf(schema, ps) {
  const node = resolve(schema, ps);
  if (isRef(schema, node)) return "ref";
  if (isRefMap(schema, node)) return "refmap";
  if (isRefList(schema, node)) return "list";
  const options = node.anyOf ? node.anyOf.map((o) => resolve(schema, o)).filter((o) => o.type !== "null") : [node];
  const types = options.map((o) => o.type);
  if (options.length === 1) {
    const o = options[0];
    if (o.enum) return "enum";
    if (o.type === "boolean") return "bool";
    if (o.type === "integer" || o.type === "number") return "number";
    if (o.type === "string") return "text";
    if (o.type === "array" && o.items && ["string", "integer"].includes(resolve(schema, o.items).type)) return resolve(schema, o.items).type === "integer" ? "intlist" : "list";
  }
  if (types.every((t) => t === "string" || t === "array")) return "textlist"; // prompt names
  return "json";
}

function fieldText(value, kind) {
  if (value === undefined || value === null) return "";
  if (Array.isArray(value)) return value.join(", ");
  if (kind === "json" || typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function parseField(text, kind) {
  const t = text.trim();
  if (t === "") return null;
  if (kind === "number") return Number(t);
  if (kind === "list") return t.split(",").map((x) => x.trim()).filter(Boolean);
  if (kind === "intlist") return t.split(",").map((x) => Number(x.trim())).filter((x) => !Number.isNaN(x));
  if (kind === "textlist") {
    const items = t.split(",").map((x) => x.trim()).filter(Boolean);
    return items.length === 1 ? items[0] : items;
  }
  if (kind === "json") return JSON.parse(t);
  return t;
}

function rank(schema, prop, ps) {
  if (prop === "on_error") return 3;
  return isRef(schema, ps) || isRefMap(schema, ps) || isRefList(schema, ps) ? 2 : 1;
}

function TextField({ id, value, kind, onCommit, invalid }) {
  const [text, setText] = useState(fieldText(value, kind));
  useEffect(() => setText(fieldText(value, kind)), [JSON.stringify(value)]);
  const commit = () => {
    if (text === fieldText(value, kind)) return;
    try {
      onCommit(parseField(text, kind));
    } catch (e) {
      alert(`This is not valid: ${e.message}`);
    }
  };
  return (
    <input id={id} value={text} aria-invalid={invalid ? "true" : "false"} onChange={(e) => setText(e.target.value)} onBlur={commit}
      onKeyDown={(e) => { if (e.key === "Enter") { e.preventDefault(); commit(); } }} />
  );
}

function StepForm({ schema, defs, step, stepNames, problems, canEdit, edit, onClose }) {
  const def = defs[step.verb] || { properties: {} };
  const [newName, setNewName] = useState(step.name);
  const [newKey, setNewKey] = useState("");
  useEffect(() => setNewName(step.name), [step.name]);
  const set = (path, value) => edit([{ op: "set", step: step.name, path, value }], `change ${step.name}.${path.join(".")}`);
  // Fields first, then the outcomes ("what happens next"), "if it fails" last.
  const all = def.properties || {};
  const order = Object.keys(all).sort((a, b) => rank(schema, a, all[a]) - rank(schema, b, all[b]));
  const props = Object.fromEntries(order.map((k) => [k, all[k]]));
  const required = new Set(def.required || []);
  const stepProblems = problems.filter((p) => p.step === step.name);
  return (
    <div className="form" aria-label={`step ${step.name}`}>
      <div className="form-head">
        <h2>{step.name} <span className="verb">{step.verb}</span></h2>
        <button onClick={onClose} aria-label="close the step form">x</button>
      </div>
      <p className="help">{VERB_WORDS[step.verb]}{def.description ? `: ${def.description}` : ""}</p>
      {stepProblems.filter((p) => !p.field).map((p, i) => (
        <div key={i} className={`problem ${p.severity}`} role="alert">{p.message}</div>
      ))}
      <label htmlFor="f-name">Step name</label>
      <div className="row">
        <input id="f-name" value={newName} disabled={!canEdit} onChange={(e) => setNewName(e.target.value)}
          onKeyDown={(e) => { if (e.key === "Enter" && newName !== step.name) edit([{ op: "rename_step", step: step.name, to: newName }], `rename ${step.name}`); }} />
        <button disabled={!canEdit || newName === step.name} onClick={() => edit([{ op: "rename_step", step: step.name, to: newName }], `rename ${step.name}`)}>Rename</button>
      </div>
      <fieldset disabled={!canEdit}>
        {Object.entries(props).map(([prop, ps]) => {
          const kind = kindOf(schema, ps);
          const r = resolve(schema, ps);
          const id = `f-${prop}`;
          const value = step.body[prop];
          const fieldProblems = stepProblems.filter((p) => p.field === prop);
          const words = kind === "ref" ? `Next when ${outcomeWords(prop)}` : r.title || prop;
          const title = (prop === "then" ? "Next step" : prop === "on_error" ? "If this step fails" : words) + (required.has(prop) ? " *" : "");
          let input;
          if (kind === "ref") {
            input = (
              <select id={id} value={value || ""} onChange={(e) => set([prop], e.target.value || null)}>
                <option value="">{prop === "on_error" ? "(apologise and end the call)" : "(not set: end the call)"}</option>
                {stepNames.map((n) => <option key={n} value={n}>{n}</option>)}
                {value && !stepNames.includes(value) && <option value={value}>{value} (missing)</option>}
              </select>
            );
          } else if (kind === "refmap") {
            const map = value && typeof value === "object" ? value : {};
            input = (
              <div className="refmap" id={id}>
                {Object.entries(map).map(([key, target]) => (
                  <div className="row" key={key}>
                    <span className="key">{key}</span>
                    <select aria-label={`${prop} ${key}`} value={target || ""} onChange={(e) => set([prop, key], e.target.value || null)}>
                      <option value="">(remove)</option>
                      {stepNames.map((n) => <option key={n} value={n}>{n}</option>)}
                      {target && !stepNames.includes(target) && <option value={target}>{target} (missing)</option>}
                    </select>
                  </div>
                ))}
                <div className="row">
                  <input aria-label={`new ${prop} key`} placeholder={prop === "options" ? "key, e.g. 3" : "value"} value={newKey} onChange={(e) => setNewKey(e.target.value)} />
                  <button disabled={!newKey || !stepNames.length} onClick={() => { set([prop, newKey], stepNames[0]); setNewKey(""); }}>Add</button>
                </div>
              </div>
            );
          } else if (kind === "enum") {
            input = (
              <select id={id} value={value ?? ""} onChange={(e) => set([prop], e.target.value || null)}>
                <option value="">(default{r.default !== undefined ? `: ${r.default}` : ""})</option>
                {r.enum.map((v) => <option key={v} value={v}>{v}</option>)}
              </select>
            );
          } else if (kind === "bool") {
            input = <input id={id} type="checkbox" checked={!!value} onChange={(e) => set([prop], e.target.checked)} />;
          } else {
            input = <TextField id={id} value={value} kind={kind} invalid={fieldProblems.length > 0} onCommit={(v) => set([prop], v)} />;
          }
          const placeholder = r.examples ? `e.g. ${r.examples.join(", ")}` : "";
          return (
            <div className={`field ${fieldProblems.length ? "has-problem" : ""}`} key={prop} data-field={prop}>
              <label htmlFor={id}>{title}</label>
              {input}
              {(r.description || placeholder) && <div className="help">{r.description || ""} {placeholder}</div>}
              {fieldProblems.map((p, i) => <div key={i} className={`problem ${p.severity}`} role="alert">{p.message}</div>)}
            </div>
          );
        })}
      </fieldset>
      {canEdit && (
        <button className="danger" onClick={() => { if (confirm(`Delete step ${step.name}? Outcomes going to it are removed.`)) edit([{ op: "delete_step", step: step.name }], `delete ${step.name}`); }}>
          Delete this step
        </button>
      )}
    </div>
  );
}

// ---- side panels -----------------------------------------------------------------------------

function Problems({ problems, onPick }) {
  if (!problems.length) return <p className="ok">No problems: this flow is ready to publish.</p>;
  return (
    <ul className="problems" aria-label="problems">
      {problems.map((p, i) => (
        <li key={i}>
          <button className={`problem-item ${p.severity}`} onClick={() => onPick(p)}>
            <span className="sev">{p.severity === "error" ? "Error" : "Warning"}</span>
            {p.step ? <b> {p.step}</b> : null} line {p.line}: {p.message}
          </button>
        </li>
      ))}
    </ul>
  );
}

function Diff({ text }) {
  if (!text) return <p className="ok">No changes: the draft is what is published.</p>;
  return (
    <pre className="diff" aria-label="changes to publish">
      {text.split("\n").map((line, i) => (
        <div key={i} className={line.startsWith("+") && !line.startsWith("+++") ? "add" : line.startsWith("-") && !line.startsWith("---") ? "del" : ""}>{line || " "}</div>
      ))}
    </pre>
  );
}

function Changes({ state, canEdit, edit }) {
  const [text, setText] = useState(state.text);
  useEffect(() => setText(state.text), [state.text]);
  const ch = state.step_changes || { added: [], removed: [], changed: [] };
  return (
    <div>
      <h3>What publishing will change</h3>
      <p className="help">
        Steps added: {ch.added.join(", ") || "none"}; removed: {ch.removed.join(", ") || "none"}; changed: {ch.changed.join(", ") || "none"}.
      </p>
      <Diff text={state.diff} />
      <h3>The flow as YAML ({state.file})</h3>
      <textarea className="yaml" aria-label="flow YAML" value={text} readOnly={!canEdit} spellCheck={false} onChange={(e) => setText(e.target.value)} rows={18} />
      {canEdit && <button disabled={text === state.text} onClick={() => edit([{ op: "replace", text }], "edit the YAML")}>Apply the YAML text</button>}
    </div>
  );
}

function sundayAt11() {
  const d = new Date();
  d.setDate(d.getDate() + ((7 - d.getDay()) % 7 || 7));
  d.setHours(11, 0, 0, 0);
  return d;
}
function weekdayAt10() {
  const d = new Date();
  do d.setDate(d.getDate() + 1); while (d.getDay() === 0 || d.getDay() === 6);
  d.setHours(10, 0, 0, 0);
  return d;
}
function localIso(d) {
  const pad = (n) => String(n).padStart(2, "0");
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? "+" : "-";
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:00${sign}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
}

function Simulate({ flow, onResult }) {
  const [at, setAt] = useState(localIso(new Date()));
  const [caller, setCaller] = useState("+32470000000");
  const [digits, setDigits] = useState("");
  const [dial, setDial] = useState("");
  const [webhook, setWebhook] = useState("");
  const [result, setResult] = useState(null);
  const [error, setError] = useState("");
  const run = async () => {
    setError("");
    try {
      const body = { at, caller, digits: digits ? digits.split(",").map((d) => d.trim()) : [], dial: dial ? dial.split(",").map((d) => d.trim()) : [] };
      if (webhook.trim()) body.webhook_answer = JSON.parse(webhook);
      const r = await api(`/flows/${flow}/simulate`, { method: "POST", body });
      setResult(r);
      onResult(r);
    } catch (e) {
      setResult(null);
      onResult(null);
      setError(e.message);
    }
  };
  return (
    <div className="simulate">
      <p className="help">Try the flow without a phone: say when someone calls and what they do. The steps taken light up on the canvas.</p>
      <label htmlFor="sim-at">When the call happens</label>
      <input id="sim-at" value={at} onChange={(e) => setAt(e.target.value)} />
      <div className="row">
        <button onClick={() => setAt(localIso(new Date()))}>Now</button>
        <button onClick={() => setAt(localIso(weekdayAt10()))}>Weekday 10:00</button>
        <button onClick={() => setAt(localIso(sundayAt11()))}>Sunday 11:00</button>
      </div>
      <label htmlFor="sim-caller">Caller's number</label>
      <input id="sim-caller" value={caller} onChange={(e) => setCaller(e.target.value)} />
      <label htmlFor="sim-digits">Keys the caller presses (one entry per question, comma between)</label>
      <input id="sim-digits" placeholder="e.g. 1 or 2,1" value={digits} onChange={(e) => setDigits(e.target.value)} />
      <label htmlFor="sim-dial">How each phone rung answers (answered, busy, no-answer, failed)</label>
      <input id="sim-dial" placeholder="e.g. busy,no-answer" value={dial} onChange={(e) => setDial(e.target.value)} />
      <label htmlFor="sim-webhook">Your system's answer to webhooks (JSON, optional)</label>
      <input id="sim-webhook" value={webhook} onChange={(e) => setWebhook(e.target.value)} />
      <button className="primary" onClick={run}>Simulate a call</button>
      {error && <div className="problem error" role="alert">{error}</div>}
      {result && (
        <div className="trace" aria-label="simulation">
          <p><b>The call ended:</b> {result.ended}{result.failed ? " (a step failed)" : ""}</p>
          <ul>
            {result.trace.map((t, i) => (
              <li key={i} className={`t-${t.kind}`}>
                <span className="t">{t.at}</span>{" "}
                {t.kind === "step" ? <><span className="n">{result.trace.slice(0, i + 1).filter((x) => x.kind === "step").length}</span> <b>{t.step}</b> ({t.verb}) because {t.why}</> : t.kind === "failed" ? <><b>{t.step} failed:</b> {t.why}</> : <span className="action">{t.text}</span>}
              </li>
            ))}
          </ul>
        </div>
      )}
    </div>
  );
}

function History({ flow, etag, canEdit, onRestored }) {
  const [items, setItems] = useState(null);
  const [shown, setShown] = useState(null);
  useEffect(() => { api(`/flows/${flow}/revisions`).then((r) => setItems(r.revisions)); }, [flow, etag]);
  if (!items) return <p>Loading...</p>;
  if (!items.length) return <p className="help">No revisions yet: the first publication starts the history.</p>;
  return (
    <div>
      <ul className="revisions">
        {items.map((r) => (
          <li key={r.id}>
            <button onClick={() => api(`/flows/${flow}/revisions/${r.id}`).then(setShown)}>
              #{r.id} {r.created_at.replace("T", " ").slice(0, 16)} {r.author}: {r.message}
            </button>
          </li>
        ))}
      </ul>
      {shown && (
        <div>
          <h3>Revision {shown.id} compared with what is published</h3>
          <p className="help">Steps added since: {shown.step_changes.added.join(", ") || "none"}; removed since: {shown.step_changes.removed.join(", ") || "none"}; changed: {shown.step_changes.changed.join(", ") || "none"}</p>
          <Diff text={shown.diff} />
          {canEdit && <button onClick={() => onRestored(shown.id)}>Restore revision {shown.id}</button>}
        </div>
      )}
    </div>
  );
}

// ---- the editor for one flow -----------------------------------------------------------------

function Editor({ me, schema, defs, flows, flowName, setFlowName, reloadFlows }) {
  const [state, setState] = useState(null);
  const [error, setError] = useState("");
  const [selected, setSelected] = useState(null);
  const [tab, setTab] = useState("problems");
  const [search, setSearch] = useState("");
  const [lit, setLit] = useState({});
  const [conflict, setConflict] = useState(null);
  const [publishing, setPublishing] = useState(false);
  const [message, setMessage] = useState("");
  const [adding, setAdding] = useState(false);
  const [busy, setBusy] = useState(false);
  const undo = useRef([]);
  const redo = useRef([]);
  const stateRef = useRef(null);
  stateRef.current = state;
  const layoutCache = useRef({ key: "", positions: new Map() });
  const flow = useReactFlow();
  const searchRef = useRef(null);

  const load = useCallback(async () => {
    setError("");
    const t0 = performance.now();
    const s = await api(`/flows/${flowName}`);
    window.__designer = { flow: flowName, fetchMs: performance.now() - t0 };
    undo.current = [];
    redo.current = [];
    setState(s);
    setSelected(null);
    setLit({});
  }, [flowName]);
  useEffect(() => { load().catch((e) => setError(e.message)); }, [load]);

  // Edits go one after the other, each on the answer to the one before (a select changed by
  // typing fires several changes at once: they must not conflict with each other).
  const queue = useRef(Promise.resolve());
  const edit = useCallback((ops, what, options = {}) => {
    const next = queue.current.then(() => runEdit(ops, what, options));
    queue.current = next.catch(() => {});
    return next;
  }, [flowName, reloadFlows]);

  const runEdit = async (ops, what, { record = true, etag } = {}) => {
    const before = stateRef.current;
    if (!before) return;
    setBusy(true);
    const t0 = performance.now();
    try {
      const s = await api(`/flows/${flowName}/edit`, { method: "POST", body: { ops, base: before.text }, etag: etag || before.etag });
      if (record) {
        undo.current.push(before.text);
        redo.current = [];
      }
      stateRef.current = s;
      setState(s);
      setError("");
      window.__designer = { ...(window.__designer || {}), editMs: performance.now() - t0, edited: (window.__designer?.edited || 0) + 1 };
      if (!before.draft !== !s.draft) reloadFlows(); // the flow list marks drafts
    } catch (e) {
      if (e.status === 412) setConflict({ theirs: e.doc.theirs, yours: e.doc.yours, what });
      else setError(`${what}: ${e.message}`);
    } finally {
      setBusy(false);
    }
  };

  const doUndo = useCallback(() => {
    const text = undo.current.pop();
    if (text === undefined || !stateRef.current) return;
    redo.current.push(stateRef.current.text);
    edit([{ op: "replace", text }], "undo", { record: false });
  }, [edit]);
  const doRedo = useCallback(() => {
    const text = redo.current.pop();
    if (text === undefined || !stateRef.current) return;
    undo.current.push(stateRef.current.text);
    edit([{ op: "replace", text }], "redo", { record: false });
  }, [edit]);

  // Graph and layout: recomputed when the steps or their outcomes change.
  const graph = useMemo(() => {
    if (!state) return { nodes: [], edges: [] };
    const t0 = performance.now();
    const g = buildGraph(schema, defs, state);
    const t1 = performance.now();
    // A change of a field leaves the shape alone: keep the positions, skip the layout.
    const key = g.nodes.map((n) => `${n.id}:${nodeHeight(n)}`).join("|") + "#" + g.edges.map((e) => `${e.source}>${e.target}`).join("|");
    let nodes;
    if (layoutCache.current.key === key) {
      nodes = g.nodes.map((n) => ({ ...n, position: layoutCache.current.positions.get(n.id) }));
    } else {
      nodes = applyLayout(g.nodes, g.edges);
      layoutCache.current = { key, positions: new Map(nodes.map((n) => [n.id, n.position])) };
      window.__designer = { ...(window.__designer || {}), layoutMs: performance.now() - t1 };
    }
    window.__designer = { ...(window.__designer || {}), graphMs: t1 - t0 };
    return { nodes, edges: g.edges };
  }, [state, schema, defs]);

  const q = search.trim().toLowerCase();
  const matches = useMemo(() => {
    if (!q || !state) return new Set();
    // Names that start with the text first, then names containing it, then fields.
    const score = (s) => {
      const name = s.name.toLowerCase();
      if (name.startsWith(q)) return 0;
      if (name.includes(q)) return 1;
      return s.verb.includes(q) || JSON.stringify(s.body).toLowerCase().includes(q) ? 2 : 9;
    };
    return new Set(state.steps.map((s) => [score(s), s.name]).filter(([n]) => n < 9).sort((a, b) => a[0] - b[0]).map(([, name]) => name));
  }, [q, state]);

  // A node or edge that did not change keeps its object: React Flow then leaves it alone, and
  // an edit redraws the step it changed, not every step in view.
  const kept = useRef(new Map());
  const stable = (item) => {
    const sig = JSON.stringify(item);
    const old = kept.current.get(item.id);
    if (old && old.sig === sig) return old.item;
    kept.current.set(item.id, { sig, item });
    return item;
  };
  const nodes = useMemo(() => graph.nodes.map((n) => stable(n.type !== "step" ? n : {
    ...n,
    selected: n.id === selected,
    data: { ...n.data, dim: q ? !matches.has(n.id) : false, match: q ? matches.has(n.id) : false, lit: lit[n.id] },
  })), [graph, selected, q, matches, lit]);
  // Only the edges that touch a step in view (or near it) are drawn. React Flow's own culling
  // keeps every edge whose box crosses the view, and in a big flow the outcomes that all go
  // to one last step cross it from everywhere: 119 labelled edges drawn (each label measured
  // with getBBox) for 14 steps in view, most of the time of opening a 200-step flow.
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
  }, [state !== null]);
  const updateNear = useCallback((vp) => {
    if (graph.nodes.length <= 60) { if (nearKey.current !== "") { nearKey.current = ""; setNear(null); } return; }
    const w = canvasSize.current.width / vp.zoom, h = canvasSize.current.height / vp.zoom;
    const left = -vp.x / vp.zoom - w / 2, top = -vp.y / vp.zoom - h / 2;
    const ids = graph.nodes.filter((n) => n.position.x + NODE_WIDTH >= left && n.position.x <= left + 2 * w && n.position.y + nodeHeight(n) >= top && n.position.y <= top + 2 * h).map((n) => n.id);
    const key = ids.join("|");
    if (key !== nearKey.current) { nearKey.current = key; setNear(new Set(ids)); }
  }, [graph]);
  const edges = useMemo(() => graph.edges
    .filter((e) => !near || near.has(e.source) || near.has(e.target))
    .map((e) => stable({ ...e, animated: !!(lit[e.source] && lit[e.target]), className: lit[e.source] && lit[e.target] ? "lit" : "" })), [graph, lit, near]);

  // A flow that fits readably is shown whole; a big one opens on its first steps (search,
  // scroll and "Fit to screen" reach the rest).
  const fitStart = useCallback(() => {
    const whole = graph.nodes.length <= 30;
    const first = whole ? undefined : graph.nodes.slice().sort((a, b) => a.position.y - b.position.y).slice(0, 12).map((n) => ({ id: n.id }));
    flow.fitView({ padding: 0.1, nodes: first, minZoom: whole ? 0.2 : 0.5 });
    updateNear(flow.getViewport());
  }, [graph, flow, updateNear]);
  useEffect(() => {
    if (state) requestAnimationFrame(() => { fitStart(); window.__designer = { ...(window.__designer || {}), laidOutAt: performance.now(), nodes: graph.nodes.length }; });
  }, [state && state.name, graph.nodes.length]);

  const focusStep = (name) => {
    setSelected(name);
    const n = graph.nodes.find((x) => x.id === name);
    if (n) flow.setCenter(n.position.x + NODE_WIDTH / 2, n.position.y + 60, { zoom: 1.1, duration: 200 });
  };

  const onConnect = (c) => {
    if (!me.can_edit || !c.sourceHandle || c.source === "__start") {
      if (c.source === "__start" && me.can_edit) edit([{ op: "set_header", key: "start", value: c.target }], "change the first step");
      return;
    }
    const from = graph.nodes.find((n) => n.id === c.source);
    const slot = from && from.data.slots.find((x) => x.id === c.sourceHandle);
    if (!slot) return;
    const path = slot.path;
    edit([{ op: "set", step: c.source, path, value: c.target }], `connect ${c.source}.${path.join(".")} to ${c.target}`);
  };
  const onEdgesDelete = (deleted) => {
    const ops = [];
    for (const e of deleted) for (const path of (e.data?.paths || [])) ops.push({ op: "set", step: e.source, path, value: null });
    if (ops.length && me.can_edit) edit(ops, "remove a connection");
  };
  const onNodesDelete = (deleted) => {
    const ops = deleted.filter((n) => n.type === "step").map((n) => ({ op: "delete_step", step: n.id }));
    if (ops.length && me.can_edit) edit(ops, "delete steps");
  };

  useEffect(() => {
    const onKey = (e) => {
      const typing = ["INPUT", "TEXTAREA"].includes(document.activeElement?.tagName);
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z" && !typing) { e.preventDefault(); e.shiftKey ? doRedo() : doUndo(); }
      else if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "y" && !typing) { e.preventDefault(); doRedo(); }
      else if (e.key === "/" && !typing) { e.preventDefault(); searchRef.current?.focus(); }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [doUndo, doRedo]);

  const showSimulation = (r) => {
    setLit({});
    if (!r) return;
    const order = {};
    r.path.forEach((step, i) => {
      setTimeout(() => {
        order[step] = order[step] || String(i + 1);
        setLit({ ...order });
      }, 150 * i);
    });
  };

  const publish = async () => {
    try {
      const s = await api(`/flows/${flowName}/publish`, { method: "POST", body: { message }, etag: state.etag });
      setState(s);
      setPublishing(false);
      setMessage("");
      setError("");
      reloadFlows();
      setNotice(`Published as revision ${s.revision.id}. New calls use it now.`);
    } catch (e) {
      if (e.status === 412) { setPublishing(false); setConflict({ theirs: e.doc.theirs, yours: state.text, what: "publish" }); }
      else setError(`Publishing refused: ${e.message}`);
    }
  };
  const [notice, setNotice] = useState("");
  useEffect(() => { if (notice) { const t = setTimeout(() => setNotice(""), 6000); return () => clearTimeout(t); } }, [notice]);

  const restore = async (id) => {
    try {
      const s = await api(`/flows/${flowName}/revisions/${id}/restore`, { method: "POST", body: {}, etag: state.etag });
      setState(s);
      setNotice(`Revision ${id} restored and published as revision ${s.revision.id}.`);
    } catch (e) {
      setError(`Restoring refused: ${e.message}`);
    }
  };

  if (error && !state) return <div className="problem error" role="alert">{error}</div>;
  if (!state) return <p className="loading">Loading {flowName}...</p>;
  const stepNames = state.steps.map((s) => s.name);
  const current = state.steps.find((s) => s.name === selected);
  const errors = state.errors;
  const warnings = state.problems.length - errors;

  return (
    <div className="editor">
      <div className="toolbar" role="toolbar" aria-label="flow actions">
        <label className="flowpick">
          Flow{" "}
          <select aria-label="flow" value={flowName} onChange={(e) => setFlowName(e.target.value)}>
            {flows.map((f) => <option key={f.name} value={f.name}>{f.name}{f.draft ? " (draft)" : ""}{f.valid ? "" : " (errors)"}</option>)}
          </select>
        </label>
        <input ref={searchRef} className="search" type="search" placeholder="Search steps ( / )" aria-label="search steps" value={search}
          onChange={(e) => setSearch(e.target.value)} onKeyDown={(e) => { if (e.key === "Enter" && matches.size) { focusStep([...matches][0]); setTab("step"); } }} />
        <button onClick={doUndo} disabled={!me.can_edit || busy} title="Undo (Ctrl+Z)">Undo</button>
        <button onClick={doRedo} disabled={!me.can_edit || busy} title="Redo (Ctrl+Y)">Redo</button>
        <button onClick={() => setAdding(true)} disabled={!me.can_edit}>Add step</button>
        <button onClick={() => flow.fitView({ padding: 0.1 })}>Fit to screen</button>
        <span className={`status ${errors ? "bad" : "good"}`} aria-live="polite" data-errors={errors}>
          {errors ? `${errors} error${errors > 1 ? "s" : ""} to fix` : "No errors"}{warnings ? `, ${warnings} warning${warnings > 1 ? "s" : ""}` : ""}
          {state.draft ? ` · draft by ${state.draft.author}` : " · published"}
        </span>
        <button className="primary publish" onClick={() => { setPublishing(true); }} disabled={!me.can_edit || !state.draft}>Publish...</button>
      </div>
      {error && <div className="problem error banner" role="alert">{error} <button onClick={() => setError("")}>dismiss</button></div>}
      {notice && <div className="notice" role="status">{notice}</div>}
      <div className="workspace">
        <div className="canvas" aria-label="flow canvas" ref={canvasRef}>
          <ReactFlow
            nodes={nodes}
            edges={edges}
            nodeTypes={NODE_TYPES}
            onConnect={onConnect}
            onNodeClick={(_, n) => n.type === "step" && (setSelected(n.id), setTab("step"))}
            onEdgesDelete={onEdgesDelete}
            onNodesDelete={onNodesDelete}
            onPaneClick={() => setSelected(null)}
            nodesDraggable={false}
            nodesConnectable={me.can_edit}
            deleteKeyCode={me.can_edit ? ["Delete", "Backspace"] : null}
            minZoom={0.05}
            onlyRenderVisibleElements
            onMove={(_, vp) => updateNear(vp)}
            proOptions={{ hideAttribution: true }}
          >
            <Background gap={20} />
            <Controls showInteractive={false} />
          </ReactFlow>
        </div>
        <aside className="side">
          <div className="tabs" role="tablist">
            {[["step", "Step"], ["problems", `Problems (${state.problems.length})`], ["try", "Try it"], ["changes", "Changes & YAML"], ["history", "History"]].map(([id, label]) => (
              <button key={id} role="tab" aria-selected={tab === id} className={tab === id ? "active" : ""} onClick={() => setTab(id)}>{label}</button>
            ))}
          </div>
          <div className="panel">
            {tab === "step" && (current ? (
              <StepForm schema={schema} defs={defs} step={current} stepNames={stepNames} problems={state.problems} canEdit={me.can_edit} edit={edit} onClose={() => setSelected(null)} />
            ) : (
              <div>
                <p className="help">Click a step on the canvas (or pick one here) to change it.</p>
                <select aria-label="pick a step" value="" onChange={(e) => e.target.value && focusStep(e.target.value)}>
                  <option value="">Pick a step...</option>
                  {stepNames.map((n) => <option key={n} value={n}>{n}</option>)}
                </select>
              </div>
            ))}
            {tab === "problems" && <Problems problems={state.problems} onPick={(p) => { if (p.step) { focusStep(p.step); setTab("step"); } else setTab("changes"); }} />}
            {tab === "try" && <Simulate flow={flowName} onResult={showSimulation} />}
            {tab === "changes" && <Changes state={state} canEdit={me.can_edit} edit={edit} />}
            {tab === "history" && <History flow={flowName} etag={state.published_etag} canEdit={me.can_edit} onRestored={restore} />}
          </div>
        </aside>
      </div>
      {adding && <AddStep defs={defs} stepNames={stepNames} onCancel={() => setAdding(false)} onAdd={(name, verb) => { setAdding(false); edit([{ op: "add_step", step: name, verb, body: {} }], `add ${name}`).then(() => { setSelected(name); setTab("step"); }); }} />}
      {publishing && (
        <div className="modal" role="dialog" aria-modal="true" aria-label="publish">
          <div className="modal-box">
            <h2>Publish {flowName}</h2>
            {errors > 0 ? (
              <p className="problem error" role="alert">This flow has {errors} error{errors > 1 ? "s" : ""}: fix them first (see Problems). Calls keep using the published version meanwhile.</p>
            ) : (
              <p>New calls will follow this version at once. Say in a few words what changed.</p>
            )}
            <Diff text={state.diff} />
            <label htmlFor="pub-msg">What changed</label>
            <input id="pub-msg" autoFocus value={message} onChange={(e) => setMessage(e.target.value)} onKeyDown={(e) => { if (e.key === "Enter" && !errors) publish(); if (e.key === "Escape") setPublishing(false); }} />
            <div className="row">
              <button className="primary" disabled={errors > 0} onClick={publish}>Publish now</button>
              <button onClick={() => setPublishing(false)}>Cancel</button>
            </div>
          </div>
        </div>
      )}
      {conflict && (
        <div className="modal" role="dialog" aria-modal="true" aria-label="conflict">
          <div className="modal-box wide">
            <h2>Someone else changed this flow</h2>
            <p>{conflict.theirs?.draft ? `${conflict.theirs.draft.author} saved a change at ${conflict.theirs.draft.at}` : "It was published meanwhile"} while you were editing ({conflict.what}). Nothing was overwritten. Compare and choose:</p>
            <div className="two">
              <div><h3>Their version (saved)</h3><pre className="yaml-view" aria-label="their version">{conflict.theirs?.text}</pre></div>
              <div><h3>Your version</h3><pre className="yaml-view" aria-label="your version">{conflict.yours || "(your change could not be applied to their version)"}</pre></div>
            </div>
            <div className="row">
              <button className="primary" onClick={() => { setConflict(null); setState(conflict.theirs); undo.current = []; redo.current = []; }}>Keep theirs</button>
              {conflict.yours && <button onClick={() => { const c = conflict; setConflict(null); setState(c.theirs); edit([{ op: "replace", text: c.yours }], "use my version", { etag: c.theirs.etag }); }}>Use mine instead</button>}
            </div>
          </div>
        </div>
      )}
    </div>
  );
}

function AddStep({ defs, stepNames, onCancel, onAdd }) {
  const [verb, setVerb] = useState("play");
  const [name, setName] = useState("");
  const taken = stepNames.includes(name);
  return (
    <div className="modal" role="dialog" aria-modal="true" aria-label="add a step">
      <div className="modal-box">
        <h2>Add a step</h2>
        <label htmlFor="add-verb">What should happen</label>
        <select id="add-verb" value={verb} onChange={(e) => setVerb(e.target.value)} autoFocus>
          {Object.keys(defs).map((v) => <option key={v} value={v}>{VERB_WORDS[v] || v} ({v})</option>)}
        </select>
        <label htmlFor="add-name">Step name (letters, digits, _ and -)</label>
        <input id="add-name" value={name} onChange={(e) => setName(e.target.value.replace(/\s+/g, "_"))}
          onKeyDown={(e) => { if (e.key === "Enter" && name && !taken) onAdd(name, verb); if (e.key === "Escape") onCancel(); }} />
        {taken && <p className="problem error">A step with this name exists.</p>}
        <div className="row">
          <button className="primary" disabled={!name || taken} onClick={() => onAdd(name, verb)}>Add</button>
          <button onClick={onCancel}>Cancel</button>
        </div>
      </div>
    </div>
  );
}

// ---- the page --------------------------------------------------------------------------------

function App() {
  const [me, setMe] = useState(null);
  const [schema, setSchema] = useState(null);
  const [flows, setFlows] = useState([]);
  const [flowName, setFlowNameState] = useState(null);
  const [error, setError] = useState("");
  const reloadFlows = useCallback(() => api("/flows").then((r) => setFlows(r.flows)), []);
  const setFlowName = (name) => {
    setFlowNameState(name);
    if (name) window.history.replaceState(null, "", `#${name}`);
  };
  useEffect(() => {
    (async () => {
      const m = await api("/me");
      CSRF = m.csrf;
      setMe(m);
      setSchema(await api("/schema"));
      const r = await api("/flows");
      setFlows(r.flows);
      const wanted = decodeURIComponent(window.location.hash.slice(1));
      setFlowName(r.flows.some((f) => f.name === wanted) ? wanted : r.flows[0]?.name || null);
    })().catch((e) => setError(e.message));
  }, []);
  const defs = useMemo(() => (schema ? verbDefs(schema) : {}), [schema]);
  if (error) return <div className="problem error" role="alert">{error}</div>;
  if (!me || !schema) return <p className="loading">Loading the designer...</p>;
  return (
    <div className="app">
      <header>
        <span className="brand">FlexVoice · Call flow designer</span>
        <span className="who">{me.email} ({me.role}, account {me.account}){me.can_edit ? "" : " · read only"}</span>
        <form method="post" action="/designer/logout"><button type="submit">Log out</button></form>
      </header>
      {flowName ? (
        <ReactFlowProvider>
          <Editor key={flowName} me={me} schema={schema} defs={defs} flows={flows} flowName={flowName} setFlowName={setFlowName} reloadFlows={reloadFlows} />
        </ReactFlowProvider>
      ) : (
        <p className="help">There are no flows in the node's flows folder yet.</p>
      )}
    </div>
  );
}

createRoot(document.getElementById("root")).render(<App />);
