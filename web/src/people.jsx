// The account's people, for its administrators: add one (the password is shown once, to pass
// on), reset a password, unlock someone after five wrong passwords.
import React, { useEffect, useState } from "react";
import { api } from "./api.js";

export function People({ onClose }) {
  const [list, setList] = useState(null);
  const [email, setEmail] = useState("");
  const [role, setRole] = useState("manager");
  const [said, setSaid] = useState("");
  const [error, setError] = useState("");
  const load = () => api("/users").then(setList).catch((e) => setError(e.message));
  useEffect(() => { load(); }, []);
  const act = async (path, body, what) => {
    setError(""); setSaid("");
    try {
      const r = await api(path, { method: "POST", body });
      setSaid(r.password ? `${what} ${r.email}: the password is ${r.password} (shown once: pass it on; they can log in now).` : `${what} ${r.email}.`);
      load();
    } catch (e) {
      setError(e.message);
    }
  };
  return (
    <div className="modal" role="dialog" aria-modal="true" aria-label="people">
      <div className="modal-box wide">
        <h2>People of this account</h2>
        {list && (
          <table className="people">
            <thead><tr><th>E-mail</th><th>Role</th><th>State</th><th /></tr></thead>
            <tbody>
              {list.users.map((u) => (
                <tr key={u.email} data-user={u.email}>
                  <td>{u.email}</td><td>{u.role}</td><td>{u.locked ? "locked" : "active"}</td>
                  <td>
                    {u.locked && <button onClick={() => act(`/users/${encodeURIComponent(u.email)}/unlock`, {}, "Unlocked")}>Unlock</button>}
                    <button onClick={() => act(`/users/${encodeURIComponent(u.email)}/reset`, {}, "New password for")}>New password</button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        <h3>Add someone</h3>
        <div className="row">
          <input aria-label="new person's e-mail" placeholder="name@company.be" value={email} onChange={(e) => setEmail(e.target.value)} />
          <select aria-label="new person's role" value={role} onChange={(e) => setRole(e.target.value)}>
            {(list ? list.roles : ["manager"]).map((r) => <option key={r} value={r}>{r}</option>)}
          </select>
          <button className="primary" disabled={!email} onClick={() => act("/users", { email, role }, "Added").then(() => setEmail(""))}>Add</button>
        </div>
        {said && <div className="notice" role="status">{said}</div>}
        {error && <div className="problem error" role="alert">{error}</div>}
        <div className="row"><button onClick={onClose}>Close</button></div>
      </div>
    </div>
  );
}
