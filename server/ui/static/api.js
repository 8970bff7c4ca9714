// The page's only door to memory: Engram's REST API at /v1, with the person's bearer token.
// The token lives in this tab's sessionStorage (not a cookie: no request carries it unless this code
// adds it, so another site cannot make the browser use it).

const TOKEN_KEY = "engram.token";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

function headers(extra = {}, withToken = token()) {
  const found = { Accept: "application/json", ...extra };
  if (withToken) found.Authorization = `Bearer ${withToken}`;
  return found;
}

function url(path, query = {}) {
  const address = new URL(`/v1${path}`, location.origin);
  for (const [key, value] of Object.entries(query)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item !== undefined && item !== null && item !== "") address.searchParams.append(key, String(item));
    }
  }
  return address;
}

/** The API's own words for a failed request: its JSON `detail` (or `error`), else the status line. */
async function detail(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) return body.detail.map((item) => item.msg || JSON.stringify(item)).join("; ");
    if (typeof body.error === "string") return body.error;
  } catch {
    // not JSON: the transport's plain-text answer (a refused Host header, a body too large)
  }
  return text.trim() || `${response.status} ${response.statusText}`;
}

async function send(method, path, { query, body, signal } = {}) {
  const response = await fetch(url(path, query), {
    method,
    headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }),
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  if (!response.ok) {
    const error = new ApiError(response.status, await detail(response));
    if (response.status === 401) window.dispatchEvent(new CustomEvent("engram:unauthorized", { detail: error.message }));
    throw error;
  }
  return response;
}

export async function get(path, query, signal) {
  return (await send("GET", path, { query, signal })).json();
}

export async function post(path, body, signal) {
  return (await send("POST", path, { body, signal })).json();
}

export async function patch(path, body) {
  return (await send("PATCH", path, { body })).json();
}

export async function remove(path) {
  return (await send("DELETE", path)).json();
}

/**
 * Whether the API answers with this token (or with none, on loopback without tokens):
 * {ok: true} or {ok: false, status, detail}. It asks for one agent, the cheapest call that needs a token.
 */
export async function probe(candidate) {
  const response = await fetch(url("/agents/", { limit: 1 }), { headers: headers({}, candidate) });
  if (response.ok) return { ok: true };
  return { ok: false, status: response.status, detail: await detail(response) };
}

/**
 * POST a body and read the answer as server-sent events: yields {event, data} as each arrives, data
 * parsed from JSON ("[DONE]" ends the stream). A refused request throws ApiError with the API's detail.
 */
export async function* events(path, body, signal) {
  const response = await send("POST", path, { body, signal });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replaceAll("\r\n", "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        const data = [];
        for (const line of frame.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (!data.length) continue;
        const text = data.join("\n");
        if (text === "[DONE]") return;
        yield { event, data: JSON.parse(text) };
      }
    }
  } finally {
    reader.cancel().catch(() => {}); // the reader stopped early (a click on Stop, another view): close the stream
  }
}

/** Every page of a list route that pages with `after=<last id>`. */
export async function all(path, query = {}, signal) {
  const found = [];
  const limit = 200;
  for (let after; ; ) {
    const page = await get(path, { ...query, limit, after }, signal);
    found.push(...page);
    if (page.length < limit) return found;
    after = page[page.length - 1].id;
  }
}

/** An id for a path segment. */
export function seg(value) {
  return encodeURIComponent(value);
}
