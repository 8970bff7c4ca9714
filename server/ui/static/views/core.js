// Core memory: each block's text, its size against its limit, read-only and shared markers; editing with
// the limit enforced as one types; history with a diff between versions; undo.

import * as api from "../api.js";
import { diff } from "../diff.js";
import { ago, count, h, notice, plural, put, say } from "../dom.js";

/** Characters as Engram counts them (code points, as Python's len), not UTF-16 units. */
function chars(text) {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

export async function coreView({ main, signal, agent }) {
  put(main, h("p", { class: "loading" }, "Loading core memory…"));
  const blocks = await api.all(`/agents/${api.seg(agent.id)}/core-memory/blocks`, {}, signal);
  put(
    main,
    h(
      "p",
      { class: "muted" },
      "Core memory stays in the agent's context in every conversation. Edits are kept as versions: ",
      "History shows what changed, Undo brings back the previous text.",
    ),
    blocks.length
      ? blocks.map((block) => blockCard(agent, block))
      : h("p", { class: "empty" }, "This agent has no blocks. A host's core_memory tools or block_create add them."),
  );
}

function blockCard(agent, initial) {
  let block = initial;
  const path = `/agents/${api.seg(agent.id)}/core-memory/blocks/${api.seg(block.label)}`;
  const status = notice();
  const badges = h("p", { class: "badges" });
  const body = h("div", { class: "block-body" });
  const meter = h("meter", { min: "0" });
  const size = h("span", { class: "size-text" });
  const history = h("section", { class: "history", hidden: true, "aria-label": `History of ${block.label}` });
  const editButton = h("button", { type: "button", onclick: () => edit() }, "Edit");
  const historyButton = h(
    "button",
    { type: "button", class: "quiet", "aria-expanded": "false", onclick: () => toggleHistory() },
    "History",
  );
  const undoButton = h("button", { type: "button", class: "quiet", onclick: () => undo() }, "Undo");
  const unlockButton = h("button", { type: "button", class: "quiet", onclick: () => unlock() }, "Make editable");
  const actions = h("div", { class: "actions" }, editButton, historyButton, undoButton, unlockButton);
  const card = h(
    "article",
    { class: "card block", dataset: { label: block.label } },
    h("h2", {}, block.label),
    badges,
    block.description ? h("p", { class: "muted description" }, block.description) : null,
    body,
    h("div", { class: "size" }, meter, size),
    actions,
    status,
    history,
  );

  function showSize(length) {
    Object.assign(meter, { max: block.limit, value: length, low: block.limit * 0.8, high: block.limit * 0.95, optimum: 0 });
    meter.setAttribute("aria-label", `${block.label}: ${length} of ${block.limit} characters`);
    put(size, `${count(length)} / ${count(block.limit)} characters`);
  }

  function show() {
    const others = block.agents.filter((name) => name !== agent.name);
    put(
      badges,
      block.read_only ? h("span", { class: "badge", title: "No tool may change its text, nor may Edit or Undo here" }, "read-only") : null,
      others.length ? h("span", { class: "badge shared" }, `shared with ${others.join(", ")}`) : null,
      h("span", { class: "muted" }, `version ${block.version}`),
    );
    put(body, block.value ? h("div", { class: "text" }, block.value) : h("p", { class: "empty" }, "(empty: Edit to write it)"));
    showSize(chars(block.value));
    editButton.disabled = undoButton.disabled = block.read_only;
    unlockButton.hidden = !block.read_only;
    actions.hidden = false;
  }

  async function unlock() {
    try {
      block = await api.patch(path, { read_only: false });
      show();
      say(status, "Editable now: tools may change it too.");
      editButton.focus();
    } catch (error) {
      say(status, error, "error");
    }
  }

  function edit() {
    const area = h("textarea", {
      class: "editor",
      rows: String(Math.min(16, Math.max(4, block.value.split("\n").length + 1))),
      "aria-label": `Text of ${block.label}`,
      value: block.value,
    });
    let accepted = block.value;
    let selection = [0, 0];
    area.addEventListener("beforeinput", () => {
      selection = [area.selectionStart, area.selectionEnd];
    });
    area.addEventListener("input", () => {
      const length = chars(area.value);
      if (length > block.limit) {
        area.value = accepted; // the limit holds as one types: what would pass it is not taken
        area.setSelectionRange(...selection);
        say(status, `The limit is ${count(block.limit)} characters; shorten the text to add more.`, "error");
        return;
      }
      accepted = area.value;
      save.disabled = area.value === block.value;
      showSize(length);
      if (status.classList.contains("error")) put(status);
    });
    const save = h("button", { type: "button", disabled: true, onclick: () => store(area.value) }, "Save");
    const cancel = h("button", { type: "button", class: "quiet", onclick: () => (show(), put(status), editButton.focus()) }, "Cancel");
    area.addEventListener("keydown", (event) => {
      if (event.key === "Escape") cancel.click();
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !save.disabled) save.click();
    });
    put(body, area, h("div", { class: "actions" }, save, cancel, h("small", { class: "muted" }, "Ctrl+Enter saves, Escape cancels")));
    actions.hidden = true;
    area.focus();
  }

  async function store(value) {
    try {
      block = await api.patch(path, { value });
      show();
      say(status, `Saved as version ${block.version}.`);
      editButton.focus();
      if (!history.hidden) await loadHistory(10);
    } catch (error) {
      say(status, error, "error");
    }
  }

  async function undo() {
    try {
      block = await api.post(`${path}/undo`, {});
      show();
      say(status, `Undone: the previous text is back, as version ${block.version}.`);
      if (!history.hidden) await loadHistory(10);
    } catch (error) {
      say(status, error, "error");
    }
  }

  async function toggleHistory() {
    history.hidden = !history.hidden;
    historyButton.setAttribute("aria-expanded", String(!history.hidden));
    if (!history.hidden) await loadHistory(10);
  }

  async function loadHistory(limit) {
    put(history, h("p", { class: "loading" }, "Loading history…"));
    try {
      const found = await api.get(`${path}/history`, { limit, full: true });
      showHistory(found, limit);
    } catch (error) {
      put(history, h("p", { class: "notice error", role: "alert" }, error.message));
    }
  }

  function showHistory(found, limit) {
    const versions = found.versions;
    const view = h("div", { class: "diff", "aria-live": "polite" });
    const buttons = versions.map((version, index) =>
      h(
        "button",
        { type: "button", class: "version", "aria-pressed": "false", onclick: () => pick(index) },
        h("strong", {}, `v${version.version}`),
        ` ${version.actor} · `,
        ago(version.created_at),
        ` · ${plural(version.chars, "char")}`,
      ),
    );
    function pick(index) {
      buttons.forEach((button, at) => button.setAttribute("aria-pressed", String(at === index)));
      const version = versions[index];
      const previous = versions[index + 1];
      if (!previous) {
        const first = found.older === 0;
        put(
          view,
          h("p", { class: "muted" }, first ? `Version ${version.version} is the first: its whole text.` : "Older versions are not loaded."),
          h("div", { class: "text" }, diff("", version.value).map(part)),
        );
        return;
      }
      put(
        view,
        h("p", { class: "muted" }, `What changed from version ${previous.version} to ${version.version}:`),
        h("div", { class: "text" }, diff(previous.value, version.value).map(part)),
      );
    }
    put(
      history,
      h("h3", {}, "History"),
      h("div", { class: "versions" }, buttons),
      found.older
        ? h("button", { type: "button", class: "quiet", onclick: () => loadHistory(Math.min(50, limit + 10)) }, `${plural(found.older, "older version")}: show more`)
        : null,
      view,
    );
    if (versions.length) pick(0);
  }

  show();
  return card;
}

function part({ kind, text }) {
  if (kind === "added") return h("ins", {}, text);
  if (kind === "removed") return h("del", {}, text);
  return text;
}
