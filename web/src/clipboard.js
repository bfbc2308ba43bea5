// Copy and paste of steps, between flows too: the clipboard is the browser's local storage
// (a step is its verb and fields). Pasted, an outcome keeps its step when this flow has one
// of that name (or it is one of the pasted steps, under the name it gets here); an outcome to
// a step this flow lacks is left open, and the notice says which, so that nothing points
// nowhere (the checks would otherwise flag a step the person never wrote).
import { useCallback } from "react";
import { slots } from "./graph.js";

const CLIPBOARD = "flexvoice.clipboard";

// The step's body with its outcomes mapped through `renamed` and those to missing steps
// removed; returns [body, the outcomes left open ("then -> bye")].
export function pastedBody(schema, def, body, renamed, existing) {
  if (!def || !body || typeof body !== "object" || Array.isArray(body)) return [body, []];
  const out = JSON.parse(JSON.stringify(body));
  const open = [];
  const dropped = new Map(); // list field -> indexes to drop
  for (const slot of slots(schema, def, body)) {
    const target = slot.target;
    if (typeof target !== "string" || !target) continue;
    const [prop, key] = slot.path;
    const now = renamed.has(target) ? renamed.get(target) : existing.has(target) ? target : null;
    if (now === null) open.push(`${slot.label} -> ${target}`);
    if (slot.path.length === 1) {
      if (now === null) delete out[prop]; else out[prop] = now;
    } else if (Array.isArray(out[prop])) {
      if (now === null) dropped.set(prop, [...(dropped.get(prop) || []), key]); else out[prop][key] = now;
    } else if (out[prop] && typeof out[prop] === "object") {
      if (now === null) delete out[prop][key]; else out[prop][key] = now;
    }
  }
  for (const [prop, gone] of dropped) out[prop] = out[prop].filter((_, i) => !gone.includes(i));
  return [out, open];
}

export function useClipboard({ schema, defs, flowName, stateRef, selectedRef, edit, setNotice, setSelected, setTab }) {
  const copyStep = useCallback(() => {
    const s = stateRef.current;
    const step = s && s.steps.find((x) => x.name === selectedRef.current);
    if (!step) return;
    window.localStorage.setItem(CLIPBOARD, JSON.stringify({ flow: flowName, steps: [{ name: step.name, verb: step.verb, body: step.body }] }));
    setNotice(`Copied step ${step.name}: paste it here or in another flow (Ctrl+V or Paste).`);
  }, [flowName]);
  const pasteSteps = useCallback(() => {
    const s = stateRef.current;
    let clip = null;
    try { clip = JSON.parse(window.localStorage.getItem(CLIPBOARD) || "null"); } catch (e) { clip = null; }
    if (!s || !clip || !Array.isArray(clip.steps) || !clip.steps.length) { setNotice("Nothing to paste: select a step and copy it first."); return; }
    const existing = new Set(s.steps.map((x) => x.name));
    const taken = new Set(existing);
    const renamed = new Map();
    for (const step of clip.steps) {
      let name = step.name;
      for (let i = 1; taken.has(name); i++) name = `${step.name}_copy${i > 1 ? i : ""}`;
      taken.add(name);
      renamed.set(step.name, name);
    }
    const open = [];
    const ops = clip.steps.map((step) => {
      const [body, left] = pastedBody(schema, defs[step.verb], step.body, renamed, existing);
      open.push(...left);
      return { op: "add_step", step: renamed.get(step.name), verb: step.verb, body };
    });
    const names = ops.map((op) => op.step).join(", ");
    edit(ops, "paste").then((ok) => {
      if (!ok) return;
      setSelected(ops[0].step);
      setTab("step");
      setNotice(open.length
        ? `Pasted ${names}. This flow has no step for ${open.join(", ")}: left open, connect ${open.length > 1 ? "them" : "it"} on the canvas.`
        : `Pasted ${names}.`);
    });
  }, [edit, schema, defs]);

  return { copyStep, pasteSteps };
}
