// ---- talking to the node ---------------------------------------------------------------------

let CSRF = "";
export function setCsrf(token) {
  CSRF = token;
}

export class ApiError extends Error {
  constructor(status, doc) {
    super((doc && doc.detail) || `the node answered ${status}`);
    this.status = status;
    this.doc = doc || {};
  }
}

export async function api(path, { method = "GET", body, etag } = {}) {
  const headers = { Accept: "application/json" };
  const file = body instanceof Blob; // a recording, sent as it is
  if (method !== "GET") {
    headers["Content-Type"] = file ? "audio/wav" : "application/json";
    headers["X-CSRF-Token"] = CSRF;
  }
  if (etag) headers["If-Match"] = `"${etag}"`;
  const payload = body === undefined ? undefined : file ? body : JSON.stringify(body);
  const r = await fetch(`/designer/api${path}`, { method, headers, body: payload, credentials: "same-origin" });
  if (r.status === 401) {
    window.location.href = "/designer/login";
    throw new ApiError(401, { detail: "logged out" });
  }
  const doc = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, doc);
  return doc;
}
