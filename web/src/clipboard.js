// Copy and paste of steps, between flows too: the clipboard is the browser's local storage
// (a step is its verb and fields; outcomes keep the step names they name, and the checks flag
// those the other flow does not have).
import { useCallback } from "react";

const CLIPBOARD = "flexvoice.clipboard";

export function useClipboard({ flowName, stateRef, selectedRef, edit, setNotice, setSelected, setTab }) {
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
    const taken = new Set(s.steps.map((x) => x.name));
    const ops = clip.steps.map((step) => {
      let name = step.name;
      for (let i = 1; taken.has(name); i++) name = `${step.name}_copy${i > 1 ? i : ""}`;
      taken.add(name);
      return { op: "add_step", step: name, verb: step.verb, body: step.body };
    });
    edit(ops, "paste").then(() => { setSelected(ops[0].step); setTab("step"); });
  }, [edit]);


  return { copyStep, pasteSteps };
}
