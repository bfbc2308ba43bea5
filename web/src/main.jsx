// The FlexVoice call flow designer: one page, talking to /designer/api on the node.
import React, { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { createRoot } from "react-dom/client";
import { ReactFlow, ReactFlowProvider, Background, Controls, useReactFlow } from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import "./designer.css";
import { StatisticsView } from "./statistics/StatisticsView.jsx";
import { verbDefs, NODE_WIDTH } from "./graph.js";
import { graphOf, newGraphCache, mergeAnswer, textMatches, useCanvas, useNear } from "./canvasgraph.js";
import { api, setCsrf } from "./api.js";
import { NODE_TYPES } from "./canvas.jsx";
import { NoteActions, useNotes, noteNodes } from "./notes.jsx";
import { useClipboard } from "./clipboard.js";
import { StepForm } from "./stepform.jsx";
import { NewFlow, AddStep, Conflict, DiscardDraft } from "./dialogs.jsx";
import { People } from "./people.jsx";
import { Problems, Diff, Changes, Simulate, History, Prompts, CallMe, TestCallers } from "./panels.jsx";

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
  const [notice, setNotice] = useState("");
  const [creating, setCreating] = useState(false);
  const [discarding, setDiscarding] = useState(false);
  const notes = useNotes(flowName, me.can_edit, setError);
  const undo = useRef([]);
  const redo = useRef([]);
  const stateRef = useRef(null);
  stateRef.current = state;
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
      // Only what changed comes back (the steps the edit touched), merged into the state it
      // was computed from: asked only when that is the state held here ("use mine" sends
      // its edit on top of their version, which this page may not hold yet).
      const mine = !etag || etag === before.etag;
      // The text the edit was made on is named by its ETag; the node asks for the text
      // itself (16 KB for 200 steps) only when someone else's change came first and it no
      // longer holds that text (base_needed): then "yours" is shown beside "theirs".
      const body = { ops, ...(mine ? { answer: "changes" } : {}) };
      const send = (extra) => api(`/flows/${flowName}/edit`, { method: "POST", body: { ...body, ...extra }, etag: etag || before.etag });
      const answer = await send({}).catch((e) => {
        if (e.status === 412 && e.doc.base_needed) return send({ base: before.text });
        throw e;
      });
      const s = mergeAnswer(before, answer);
      // Never expected: a patched text the node did not mean. Read the flow again whole.
      if (!(await textMatches(s.text, s.etag))) { await load(); return true; }
      if (record) {
        undo.current.push(before.text);
        redo.current = [];
      }
      stateRef.current = s;
      setState(s);
      setError("");
      window.__designer = { ...(window.__designer || {}), editMs: performance.now() - t0, edited: (window.__designer?.edited || 0) + 1 };
      if (!before.draft !== !s.draft) reloadFlows(); // the flow list marks drafts
      if (s.notes) notes.set(s.notes); // the node moved them along with a renamed step
      return true;
    } catch (e) {
      if (e.status === 412) setConflict({ theirs: e.doc.theirs, yours: e.doc.yours, what });
      else setError(`${what}: ${e.message}`);
      return false;
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

  // Graph and layout: only the steps an edit changed are built again (canvasgraph.js).
  const graphCache = useRef(null);
  const graph = useMemo(() => {
    if (!state) return { nodes: [], edges: [] };
    if (!graphCache.current) graphCache.current = newGraphCache();
    const t0 = performance.now();
    const g = graphOf(schema, defs, state, graphCache.current);
    const ms = performance.now() - t0;
    window.__designer = { ...(window.__designer || {}), graphMs: ms, rebuilt: g.rebuilt, ...(g.laidOut ? { layoutMs: ms } : {}) };
    return g;
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

  const { canvasRef, near, updateNear } = useNear(graph, state !== null);
  const noteItems = useMemo(() => noteNodes(notes.notes, graph.nodes, me.can_edit), [notes.notes, graph]);
  const { nodes, edges, onNodesChange } = useCanvas(graph, { selected, q, matches, lit, notes: noteItems, near });

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

  const addNote = () => {
    const vp = flow.getViewport();
    notes.add(selected, { x: (40 - vp.x) / vp.zoom, y: (40 - vp.y) / vp.zoom });
  };

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

  const selectedRef = useRef(null);
  selectedRef.current = selected;
  const { copyStep, pasteSteps } = useClipboard({ schema, defs, flowName, stateRef, selectedRef, edit, setNotice, setSelected, setTab });

  useEffect(() => {
    const onKey = (e) => {
      const typing = ["INPUT", "TEXTAREA"].includes(document.activeElement?.tagName);
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z" && !typing) { e.preventDefault(); e.shiftKey ? doRedo() : doUndo(); }
      else if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "y" && !typing) { e.preventDefault(); doRedo(); }
      else if (e.key === "/" && !typing) { e.preventDefault(); searchRef.current?.focus(); }
      else if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "c" && !typing && selectedRef.current) { e.preventDefault(); copyStep(); }
      else if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "v" && !typing && me.can_edit) { e.preventDefault(); pasteSteps(); }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [doUndo, doRedo, copyStep, pasteSteps]);

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
  // Back to the published flow; the draft's text goes on the undo list (Ctrl+Z restores it).
  const discard = () => queue.current.then(async () => {
    const before = stateRef.current;
    setDiscarding(false);
    try {
      const s = await api(`/flows/${flowName}/discard`, { method: "POST", body: {}, etag: before.etag });
      undo.current.push(before.text);
      redo.current = [];
      stateRef.current = s;
      setState(s);
      if (s.notes) notes.set(s.notes);
      reloadFlows();
      setNotice("Changes thrown away: this is the published flow again. Undo (Ctrl+Z) brings them back.");
    } catch (e) {
      if (e.status === 412) setConflict({ theirs: e.doc.theirs, yours: null, what: "discard" });
      else setError(`Throwing away the changes failed: ${e.message}`);
    }
  });
  useEffect(() => { if (notice) { const t = setTimeout(() => setNotice(""), 6000); return () => clearTimeout(t); } }, [notice]);

  const restore = async (id) => {
    try {
      const s = await api(`/flows/${flowName}/revisions/${id}/restore`, { method: "POST", body: {}, etag: state.etag });
      setState(s);
      if (s.notes) notes.set(s.notes);
      setNotice(`Revision ${id} restored and published as revision ${s.revision.id}.`);
    } catch (e) {
      setError(`Restoring refused: ${e.message}`);
    }
  };

  // The same array while the names stay the same: the forms' lists of steps are not redone.
  const namesKey = JSON.stringify(state ? state.steps.map((s) => s.name) : []);
  const stepNames = useMemo(() => JSON.parse(namesKey), [namesKey]);
  if (error && !state) return <div className="problem error" role="alert">{error}</div>;
  if (!state) return <p className="loading">Loading {flowName}...</p>;
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
        <button onClick={copyStep} disabled={!selected} title="Copy the selected step (Ctrl+C)">Copy</button>
        <button onClick={pasteSteps} disabled={!me.can_edit} title="Paste copied steps, from this flow or another (Ctrl+V)">Paste</button>
        <button onClick={() => setCreating(true)} disabled={!me.can_edit}>New flow</button>
        <button onClick={addNote} disabled={!me.can_edit} title="A sticky note beside the selected step (or on the canvas): for people, never part of the flow">Add note</button>
        <button onClick={() => flow.fitView({ padding: 0.1 })}>Fit to screen</button>
        <span className={`status ${errors ? "bad" : "good"}`} aria-live="polite" data-errors={errors}>
          {errors ? `${errors} error${errors > 1 ? "s" : ""} to fix` : "No errors"}{warnings ? `, ${warnings} warning${warnings > 1 ? "s" : ""}` : ""}
          {state.draft ? ` · draft by ${state.draft.author}` : " · published"}
        </span>
        <button className="discard" onClick={() => setDiscarding(true)} disabled={!me.can_edit || !state.draft || busy} title="Throw away the draft: back to the published flow">Discard changes...</button>
        <button className="primary publish" onClick={() => { setPublishing(true); }} disabled={!me.can_edit || !state.draft}>Publish...</button>
      </div>
      {error && <div className="problem error banner" role="alert">{error} <button onClick={() => setError("")}>dismiss</button></div>}
      {notice && <div className="notice" role="status">{notice}</div>}
      <div className="workspace">
        <div className="canvas" aria-label="flow canvas" ref={canvasRef}>
          <NoteActions.Provider value={notes}>
          <ReactFlow
            nodes={nodes}
            edges={edges}
            onNodesChange={onNodesChange}
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
          </NoteActions.Provider>
        </div>
        <aside className="side">
          <div className="tabs" role="tablist">
            {[["step", "Step"], ["problems", `Problems (${state.problems.length})`], ["try", "Try it"], ["prompts", "Prompts"], ["changes", "Changes & YAML"], ["history", "History"]].map(([id, label]) => (
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
            {tab === "try" && <><Simulate flow={flowName} onResult={showSimulation} /><CallMe flow={flowName} canEdit={me.can_edit} /><TestCallers flow={flowName} canEdit={me.can_edit} /></>}
            {tab === "prompts" && <Prompts canEdit={me.can_edit} onUploaded={() => load().catch(() => {})} />}
            {tab === "changes" && <Changes state={state} canEdit={me.can_edit} edit={edit} />}
            {tab === "history" && <History flow={flowName} etag={state.published_etag} canEdit={me.can_edit} onRestored={restore} />}
          </div>
        </aside>
      </div>
      {creating && <NewFlow onCancel={() => setCreating(false)} onCreated={(name) => { setCreating(false); reloadFlows().then(() => setFlowName(name)); }} />}
      {adding && <AddStep defs={defs} stepNames={stepNames} onCancel={() => setAdding(false)} onAdd={(name, verb) => { setAdding(false); edit([{ op: "add_step", step: name, verb, body: {} }], `add ${name}`).then(() => { setSelected(name); setTab("step"); }); }} />}
      {discarding && <DiscardDraft flowName={flowName} draft={state.draft} changes={state.step_changes} onCancel={() => setDiscarding(false)} onDiscard={discard} />}
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
      {conflict && <Conflict conflict={conflict}
        onKeepTheirs={() => { setConflict(null); setState(conflict.theirs); undo.current = []; redo.current = []; }}
        onUseMine={() => { const c = conflict; setConflict(null); setState(c.theirs); edit([{ op: "replace", text: c.yours }], "use my version", { etag: c.theirs.etag }); }} />}
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
  // The console's views: the designer, and (analyst, manager, administrator) the statistics.
  const [view, setViewState] = useState(new URLSearchParams(window.location.search).get("view") === "statistics" ? "statistics" : "flows");
  const setView = (v) => {
    setViewState(v);
    window.history.replaceState(null, "", v === "statistics" ? "/designer/?view=statistics" : `/designer/${flowName ? `#${flowName}` : ""}`);
  };
  const reloadFlows = useCallback(() => api("/flows").then((r) => setFlows(r.flows)), []);
  const setFlowName = (name) => {
    setFlowNameState(name);
    if (name && view !== "statistics") window.history.replaceState(null, "", `#${name}`);
  };
  useEffect(() => {
    (async () => {
      const m = await api("/me");
      setCsrf(m.csrf);
      setMe(m);
      setSchema(await api("/schema"));
      const r = await api("/flows");
      setFlows(r.flows);
      const wanted = decodeURIComponent(window.location.hash.slice(1));
      setFlowName(r.flows.some((f) => f.name === wanted) ? wanted : r.flows[0]?.name || null);
    })().catch((e) => setError(e.message));
  }, []);
  const defs = useMemo(() => (schema ? verbDefs(schema) : {}), [schema]);
  const [people, setPeople] = useState(false);
  if (error) return <div className="problem error" role="alert">{error}</div>;
  if (!me || !schema) return <p className="loading">Loading the designer...</p>;
  return (
    <div className="app">
      <header>
        <span className="brand">FlexVoice · {view === "statistics" ? "Statistics" : "Call flow designer"}</span>
        {me.can_read_statistics && (
          <nav aria-label="console">
            <button aria-current={view === "flows" ? "page" : undefined} onClick={() => setView("flows")}>Flows</button>
            <button aria-current={view === "statistics" ? "page" : undefined} onClick={() => setView("statistics")}>Statistics</button>
          </nav>
        )}
        <span className="who">{me.email} ({me.role}, account {me.account}){me.can_edit ? "" : " · read only"}</span>
        {me.role === "administrator" && <button onClick={() => setPeople(true)}>People</button>}
        <form method="post" action="/designer/logout"><button type="submit">Log out</button></form>
      </header>
      {people && <People onClose={() => setPeople(false)} />}
      {view === "statistics" && me.can_read_statistics ? (
        <StatisticsView flows={flows} />
      ) : flowName ? (
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
