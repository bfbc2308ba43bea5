import React from "react";
import { Handle, Position } from "@xyflow/react";
import { summary, NODE_WIDTH } from "./graph.js";
import { VERB_WORDS } from "./words.js";
import { NoteNode } from "./notes.jsx";

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

export const NODE_TYPES = { step: StepNode, start: StartNode, note: NoteNode };
