// Building the page from DOM nodes. Memory text is untrusted (a block or a passage may hold <script> or
// HTML): it only ever becomes text nodes. Nothing here, nor anywhere in the UI, assigns innerHTML.

const SVG = "http://www.w3.org/2000/svg";

/** An element: h("button", {class: "x", type: "button", onclick: fn}, "text", child, [more]). */
export function h(tag, props = {}, ...children) {
  return fill(document.createElement(tag), props, children);
}

/** An SVG element, the same way. */
export function s(tag, props = {}, ...children) {
  return fill(document.createElementNS(SVG, tag), props, children);
}

function fill(element, props, children) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      element.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(element.dataset, value);
    } else if (key === "value" || key === "checked" || key === "disabled" || key === "maxLength") {
      element[key] = value;
    } else {
      element.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function put(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const numberFormat = new Intl.NumberFormat();

export function when(iso) {
  return iso ? dateFormat.format(new Date(iso)) : "never";
}

/** "3 minutes ago", with the exact date as the element's title. */
export function ago(iso) {
  if (!iso) return h("span", {}, "never");
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  const steps = [
    [60, "second"],
    [60, "minute"],
    [24, "hour"],
    [30, "day"],
    [12, "month"],
    [Infinity, "year"],
  ];
  let value = seconds;
  let unit = "second";
  for (const [size, name] of steps) {
    unit = name;
    if (Math.abs(value) < size) break;
    value /= size;
  }
  const text =
    Math.abs(seconds) < 45 ? "just now" : new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }).format(-Math.round(value), unit);
  return h("time", { datetime: iso, title: when(iso) }, text);
}

export function count(n) {
  return numberFormat.format(n);
}

export function plural(n, one, many = `${one}s`) {
  return `${count(n)} ${n === 1 ? one : many}`;
}

/** The text with each word of `query` marked: <mark> elements around text nodes, never markup. */
export function highlight(text, query) {
  const words = [...new Set(query.toLowerCase().split(/[^\p{L}\p{N}_]+/u).filter((word) => word.length > 1))];
  if (!words.length) return [text];
  const pattern = new RegExp(`(${words.map((word) => word.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})`, "giu");
  return text.split(pattern).map((part, index) => (index % 2 ? h("mark", {}, part) : part));
}

/** A status line that screen readers announce: say(el, "Saved.") or say(el, error). */
export function say(element, message, kind = "ok") {
  element.className = `notice ${kind}`;
  element.setAttribute("role", kind === "error" ? "alert" : "status");
  put(element, message instanceof Error ? message.message : message);
}

export function notice() {
  return h("p", { class: "notice", role: "status", "aria-live": "polite" });
}

/** Ask before something that cannot be undone; resolves true when the person confirms. */
export function confirmAction({ title, message, action }) {
  return new Promise((resolve) => {
    const cancel = h("button", { type: "button", class: "quiet", onclick: () => dialog.close("cancel") }, "Cancel");
    const confirm = h("button", { type: "button", class: "danger", onclick: () => dialog.close("confirm") }, action);
    const dialog = h(
      "dialog",
      { class: "confirm", "aria-labelledby": "confirm-title", "aria-describedby": "confirm-message" },
      h("h2", { id: "confirm-title" }, title),
      h("p", { id: "confirm-message" }, message),
      h("div", { class: "actions" }, cancel, confirm),
    );
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "confirm");
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

/** A labelled form field: field("Name", input) or field("Tags", input, "comma-separated"). */
export function field(label, control, hint) {
  control.id ||= `field-${Math.random().toString(36).slice(2, 9)}`;
  return h(
    "div",
    { class: "field" },
    h("label", { for: control.id }, label),
    control,
    hint ? h("small", { class: "muted" }, hint) : null,
  );
}

export function tagList(tags) {
  return tags.length ? h("ul", { class: "tags", "aria-label": "Tags" }, tags.map((tag) => h("li", {}, tag))) : null;
}

/** Comma-separated tags typed by a person, trimmed, without empty ones. */
export function parseTags(text) {
  return text
    .split(",")
    .map((tag) => tag.trim())
    .filter(Boolean);
}
