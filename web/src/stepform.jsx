import React, { useEffect, useState } from "react";
import { isRef, isRefMap, isRefList, resolve, outcomeWords } from "./graph.js";
import { VERB_WORDS } from "./words.js";

// ---- forms generated from the schema ---------------------------------------------------------

// Every step as an <option>: one list per outcome field, 200 options each in a big flow. Made
// again only when the names change (not at each edit of a field, whose answer re-renders the
// form): React then leaves the options alone.
const StepOptions = React.memo(function StepOptions({ names }) {
  return names.map((n) => <option key={n} value={n}>{n}</option>);
});

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

export function StepForm({ schema, defs, step, stepNames, problems, canEdit, edit, onClose }) {
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
                <StepOptions names={stepNames} />
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
                      <StepOptions names={stepNames} />
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
