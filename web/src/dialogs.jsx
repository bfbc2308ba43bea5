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
