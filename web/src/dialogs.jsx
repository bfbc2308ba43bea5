// The page's small dialogs: a new flow, a new step.
import React, { useState } from "react";
import { api } from "./api.js";
import { VERB_WORDS } from "./words.js";

export function NewFlow({ onCancel, onCreated }) {
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [error, setError] = useState("");
  const create = async () => {
    try {
      await api("/flows", { method: "POST", body: { name, description } });
      onCreated(name);
    } catch (e) {
      setError(e.message);
    }
  };
  return (
    <div className="modal" role="dialog" aria-modal="true" aria-label="new flow">
      <div className="modal-box">
        <h2>New flow</h2>
        <p className="help">It starts as a greeting and a hang-up, ready to change on the canvas.</p>
        <label htmlFor="new-name">Flow name (lower-case letters, digits and -)</label>
        <input id="new-name" autoFocus value={name} onChange={(e) => setName(e.target.value.trim().toLowerCase())}
          onKeyDown={(e) => { if (e.key === "Enter" && name) create(); if (e.key === "Escape") onCancel(); }} />
        <label htmlFor="new-desc">What it is for</label>
        <input id="new-desc" value={description} onChange={(e) => setDescription(e.target.value)}
          onKeyDown={(e) => { if (e.key === "Enter" && name) create(); if (e.key === "Escape") onCancel(); }} />
        {error && <p className="problem error" role="alert">{error}</p>}
        <div className="row">
          <button className="primary" disabled={!name} onClick={create}>Create</button>
          <button onClick={onCancel}>Cancel</button>
        </div>
      </div>
    </div>
  );
}

export function AddStep({ defs, stepNames, onCancel, onAdd }) {
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

// Discarding the draft: said in the words of the person who made it, with what is lost and
// what is not (calls never ran the draft). The safe choice has the focus.
export function DiscardDraft({ flowName, draft, changes, onCancel, onDiscard }) {
  const counts = [["changed", "changed"], ["added", "added"], ["removed", "removed"]]
    .map(([key, word]) => [changes?.[key]?.length || 0, word])
    .filter(([n]) => n > 0)
    .map(([n, word]) => `${n} step${n > 1 ? "s" : ""} ${word}`);
  return (
    <div className="modal" role="dialog" aria-modal="true" aria-label="discard the draft"
      onKeyDown={(e) => { if (e.key === "Escape") onCancel(); }}>
      <div className="modal-box">
        <h2>Throw away the changes to {flowName}?</h2>
        <p>
          The draft{draft ? ` (last saved by ${draft.author} at ${draft.at})` : ""} goes back to the
          published flow{counts.length ? `: ${counts.join(", ")} since it was published` : ""}.
          Calls are not affected: they use the published flow all along.
        </p>
        <p className="help">Changed your mind afterwards? Undo (Ctrl+Z) brings the changes back.</p>
        <div className="row">
          <button autoFocus onClick={onCancel}>Keep my changes</button>
          <button className="danger" onClick={onDiscard}>Throw away the changes</button>
        </div>
      </div>
    </div>
  );
}

// Someone else's change came first: both versions side by side, nothing overwritten.
export function Conflict({ conflict, onKeepTheirs, onUseMine }) {
  const theirs = conflict.theirs;
  const yours = conflict.yours || (conflict.what === "discard"
    ? "(you asked to throw the changes away: nothing was thrown away)"
    : "(your change could not be applied to their version)");
  return (
    <div className="modal" role="dialog" aria-modal="true" aria-label="conflict">
      <div className="modal-box wide">
        <h2>Someone else changed this flow</h2>
        <p>{theirs?.draft ? `${theirs.draft.author} saved a change at ${theirs.draft.at}` : "It was published meanwhile"} while you were editing ({conflict.what}). Nothing was overwritten. Compare and choose:</p>
        <div className="two">
          <div><h3>Their version (saved)</h3><pre className="yaml-view" aria-label="their version">{theirs?.text}</pre></div>
          <div><h3>Your version</h3><pre className="yaml-view" aria-label="your version">{yours}</pre></div>
        </div>
        <div className="row">
          <button className="primary" onClick={onKeepTheirs}>Keep theirs</button>
          {conflict.yours && <button onClick={onUseMine}>Use mine instead</button>}
        </div>
      </div>
    </div>
  );
}
