// Sticky notes on the canvas: the team's words about a flow, kept beside it by the node
// (flows/<file>.layout.json), never in the flow. Saved at once for everyone.
import React, { createContext, useCallback, useContext, useEffect, useState } from "react";
import { api } from "./api.js";
import { NODE_WIDTH } from "./graph.js";

export const NoteActions = createContext(null);

export function NoteNode({ data }) {
  const actions = useContext(NoteActions);
  return (
    <div className="note" data-note={data.id}>
      <textarea aria-label="sticky note" defaultValue={data.text} readOnly={!data.canEdit} rows={4}
        className="nodrag nowheel" onBlur={(e) => e.target.value !== data.text && actions.update(data.id, e.target.value)} />
      {data.canEdit && <button className="note-remove" aria-label="remove the note" onClick={() => actions.remove(data.id)}>x</button>}
    </div>
  );
}

export function useNotes(flow, canEdit, onError) {
  const [notes, setNotes] = useState([]);
  // Until the notes are read, a change would save the list without the others' notes.
  const [loaded, setLoaded] = useState(false);
  const reload = useCallback(() => {
    api(`/flows/${flow}/notes`).then((r) => { setNotes(r.notes); setLoaded(true); }).catch((e) => onError(`Reading the notes: ${e.message}`));
  }, [flow, onError]);
  useEffect(reload, [reload]);
  const save = useCallback((next) => {
    if (!loaded) { onError("The notes are not read yet: try again in a moment"); reload(); return; }
    setNotes(next);
    api(`/flows/${flow}/notes`, { method: "PUT", body: { notes: next } }).then((r) => setNotes(r.notes)).catch((e) => onError(`Saving the notes: ${e.message}`));
  }, [flow, onError, loaded, reload]);
  const add = (step, where) => save([...notes, { id: `n${Date.now().toString(36)}`, text: "", step, x: where.x, y: where.y }]);
  const update = (id, text) => save(notes.map((n) => (n.id === id ? { ...n, text } : n)));
  const remove = (id) => save(notes.filter((n) => n.id !== id));
  return { notes, set: setNotes, add, update, remove, reload, canEdit };
}

// Canvas nodes for the notes: beside their step when they have one (it moves with the
// layout), else where they were put.
export function noteNodes(notes, stepNodes, canEdit) {
  const at = new Map(stepNodes.map((n) => [n.id, n.position]));
  return notes.map((note) => {
    const p = note.step && at.get(note.step);
    return {
      id: `note:${note.id}`,
      type: "note",
      position: p ? { x: p.x + NODE_WIDTH + 24, y: p.y } : { x: note.x, y: note.y },
      data: { id: note.id, text: note.text, canEdit },
      selectable: false,
      draggable: false,
      connectable: false,
    };
  });
}
