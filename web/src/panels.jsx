import React, { useEffect, useState } from "react";
import { api } from "./api.js";

// ---- side panels -----------------------------------------------------------------------------

export function Problems({ problems, onPick }) {
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

export function Diff({ text }) {
  if (!text) return <p className="ok">No changes: the draft is what is published.</p>;
  return (
    <pre className="diff" aria-label="changes to publish">
      {text.split("\n").map((line, i) => (
        <div key={i} className={line.startsWith("+") && !line.startsWith("+++") ? "add" : line.startsWith("-") && !line.startsWith("---") ? "del" : ""}>{line || " "}</div>
      ))}
    </pre>
  );
}

export function Changes({ state, canEdit, edit }) {
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

export function Simulate({ flow, onResult }) {
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

export function History({ flow, etag, canEdit, onRestored }) {
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

// The node's recorded prompts: play them, upload a recording (any WAV: the node converts it).
export function Prompts({ canEdit, onUploaded }) {
  const [list, setList] = useState(null);
  const [name, setName] = useState("");
  const [language, setLanguage] = useState("all");
  const [file, setFile] = useState(null);
  const [message, setMessage] = useState("");
  const [error, setError] = useState("");
  const load = () => api("/prompts").then(setList).catch((e) => setError(e.message));
  useEffect(() => { load(); }, []);
  const upload = async () => {
    setError(""); setMessage("");
    try {
      const r = await api(`/prompts/${language}/${encodeURIComponent(name)}`, { method: "PUT", body: file });
      setMessage(`Saved ${r.name} (${r.language === "all" ? "every language" : r.language}, ${r.seconds} s). Flows can use it as prompt: ${r.name}`);
      setName(""); setFile(null);
      load();
      onUploaded && onUploaded();
    } catch (e) {
      setError(e.message);
    }
  };
  if (!list) return <p>{error || "Loading..."}</p>;
  return (
    <div className="prompts">
      <p className="help">Recorded messages flows play with <code>prompt: name</code>. Press play to hear one.</p>
      <ul aria-label="prompts">
        {list.prompts.map((p) => (
          <li key={`${p.language}/${p.name}`} data-prompt={`${p.language}/${p.name}`}>
            <b>{p.name}</b> <span className="help">{p.language === "all" ? "every language" : p.language}{p.seconds != null ? `, ${p.seconds} s` : ""}</span>
            <audio controls preload="none" aria-label={`play ${p.name} (${p.language})`} src={`/designer/api/prompts/${p.language}/${encodeURIComponent(p.name)}`} />
          </li>
        ))}
      </ul>
      {canEdit && (
        <div className="upload">
          <h3>Upload a recording</h3>
          <label htmlFor="up-name">Prompt name (lower-case, digits, _ and -)</label>
          <input id="up-name" value={name} onChange={(e) => setName(e.target.value.trim())} placeholder="e.g. holiday_greeting" />
          <label htmlFor="up-lang">Language</label>
          <select id="up-lang" value={language} onChange={(e) => setLanguage(e.target.value)}>
            <option value="all">every language</option>
            {list.languages.map((l) => <option key={l} value={l}>{l}</option>)}
          </select>
          <label htmlFor="up-file">WAV file (converted to telephone quality, 8 kHz mono)</label>
          <input id="up-file" type="file" accept=".wav,audio/wav,audio/x-wav" onChange={(e) => setFile(e.target.files[0] || null)} />
          <button className="primary" disabled={!name || !file} onClick={upload}>Upload</button>
        </div>
      )}
      {message && <div className="notice" role="status">{message}</div>}
      {error && <div className="problem error" role="alert">{error}</div>}
    </div>
  );
}

// A real call to the person's phone running the draft: placed and billed like any call.
export function CallMe({ flow, canEdit }) {
  const [numbers, setNumbers] = useState([]);
  const [from, setFrom] = useState("");
  const [to, setTo] = useState(() => window.localStorage.getItem("flexvoice.phone") || "");
  const [result, setResult] = useState("");
  const [error, setError] = useState("");
  useEffect(() => { api("/numbers").then((r) => { setNumbers(r.numbers); setFrom(r.numbers[0] || ""); }).catch(() => {}); }, []);
  if (!canEdit) return null;
  const call = async () => {
    setError(""); setResult("");
    try {
      window.localStorage.setItem("flexvoice.phone", to);
      const r = await api(`/flows/${flow}/call`, { method: "POST", body: from ? { to, from } : { to } });
      setResult(`Calling ${r.to} from ${r.from} (call ${r.call}): answer to hear the draft. The call is billed as usual.`);
    } catch (e) {
      setError(e.message);
    }
  };
  return (
    <div className="callme">
      <h3>Call me</h3>
      <p className="help">Ring your phone and hear this version (the draft), before you publish it.</p>
      <label htmlFor="call-to">Your phone number</label>
      <input id="call-to" value={to} placeholder="+32470123456" onChange={(e) => setTo(e.target.value)} />
      <label htmlFor="call-from">Call from</label>
      <select id="call-from" value={from} onChange={(e) => setFrom(e.target.value)}>
        {numbers.map((n) => <option key={n} value={n}>{n}</option>)}
      </select>
      <button className="primary" disabled={!to} onClick={call}>Call me</button>
      {result && <div className="notice" role="status">{result}</div>}
      {error && <div className="problem error" role="alert">{error}</div>}
    </div>
  );
}

// Test callers: these phones hear the draft when they call the account; others, the published flow.
export function TestCallers({ flow, canEdit }) {
  const [text, setText] = useState("");
  const [saved, setSaved] = useState("");
  const [error, setError] = useState("");
  useEffect(() => { api(`/flows/${flow}/testers`).then((r) => setText(r.callers.join(", "))).catch(() => {}); }, [flow]);
  const save = async () => {
    setError(""); setSaved("");
    try {
      const callers = text.split(/[,\n]/).map((x) => x.trim()).filter(Boolean);
      const r = await api(`/flows/${flow}/testers`, { method: "PUT", body: { callers } });
      setText(r.callers.join(", "));
      setSaved(r.callers.length ? `These phones now hear the draft when they call: ${r.callers.join(", ")}.` : "No test callers: everyone hears the published flow.");
    } catch (e) {
      setError(e.message);
    }
  };
  return (
    <div className="testers">
      <h3>Test callers</h3>
      <p className="help">Phones listed here hear this draft when they call your numbers; every other caller hears what is published.</p>
      <label htmlFor="testers">Phone numbers (comma between)</label>
      <input id="testers" value={text} readOnly={!canEdit} placeholder="+32470123456" onChange={(e) => setText(e.target.value)} />
      {canEdit && <button onClick={save}>Save test callers</button>}
      {saved && <div className="notice" role="status">{saved}</div>}
      {error && <div className="problem error" role="alert">{error}</div>}
    </div>
  );
}
