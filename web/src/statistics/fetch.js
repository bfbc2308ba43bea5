// GET helpers for /designer/api/statistics (reading only: no CSRF token involved).
const BASE = "/designer/api/statistics";

export function statisticsUrl(path, params = {}) {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== ""));
  const s = q.toString();
  return `${BASE}${path}${s ? `?${s}` : ""}`;
}

export async function getJson(path, params) {
  const r = await fetch(statisticsUrl(path, params), { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (r.status === 401) {
    window.location.href = "/designer/login";
    throw new Error("logged out");
  }
  const doc = await r.json().catch(() => null);
  if (!r.ok) throw new Error((doc && doc.detail) || `the node answered ${r.status}`);
  return doc;
}
