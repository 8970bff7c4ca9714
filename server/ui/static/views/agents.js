// Agents: the list with each one's memory counts and last activity; create; delete with a confirmation.

import * as api from "../api.js";
import { ago, confirmAction, count, field, h, notice, plural, put, say } from "../dom.js";

const PAGE = 50;

export async function agentsView({ main, signal }) {
  const status = notice();
  const list = h("ul", { class: "agents", "aria-label": "Agents" });
  const more = h("button", { type: "button", class: "quiet", hidden: true }, "More agents");
  put(
    main,
    h("h1", { tabindex: "-1" }, "Agents"),
    h(
      "p",
      { class: "muted" },
      "Each agent is a separate memory: its core memory blocks, archival passages and conversations.",
    ),
    status,
    list,
    more,
    createForm(() => load(null)),
  );

  let last = null;
  async function load(after) {
    if (!after) put(list, h("li", { class: "loading" }, "Loading agents…"));
    const page = await api.get("/agents", { limit: PAGE, after }, signal);
    if (!after) put(list);
    if (!after && !page.length) {
      list.append(
        h(
          "li",
          { class: "empty" },
          "No agents yet. Create one below, or connect a host: its first memory call creates the default agent.",
        ),
      );
    }
    for (const agent of page) list.append(row(agent));
    last = page.length ? page[page.length - 1].id : last;
    more.hidden = page.length < PAGE;
  }
  more.addEventListener("click", () => load(last).catch((error) => say(status, error, "error")));

  function row(agent) {
    const numbers = h("dl", { class: "stats" }, stat("Memory", "counting…"));
    const item = h(
      "li",
      { class: "card agent" },
      h(
        "div",
        { class: "agent-head" },
        h("h2", {}, h("a", { href: `#/agent/${api.seg(agent.id)}/core` }, agent.name)),
        h(
          "button",
          {
            type: "button",
            class: "danger quiet",
            "aria-label": `Delete agent ${agent.name}`,
            onclick: () => remove(agent, item),
          },
          "Delete",
        ),
      ),
      agent.description ? h("p", { class: "muted" }, agent.description) : null,
      numbers,
    );
    api
      .get(`/agents/${api.seg(agent.id)}/statistics`, {}, signal)
      .then((found) =>
        put(
          numbers,
          stat("Blocks", count(found.blocks)),
          stat("Passages", count(found.passages)),
          stat("Conversations", count(found.conversations)),
          stat("Messages", count(found.messages)),
          stat("Last activity", ago(found.last_activity)),
        ),
      )
      .catch((error) => {
        if (error.name !== "AbortError") put(numbers, stat("Memory", error.message));
      });
    return item;
  }

  async function remove(agent, item) {
    const sure = await confirmAction({
      title: `Delete ${agent.name}?`,
      message:
        "Its core memory, archival passages, conversations and history are deleted for good " +
        "(blocks it shares with other agents stay with them).",
      action: "Delete agent",
    });
    if (!sure) return;
    try {
      const done = await api.remove(`/agents/${api.seg(agent.id)}`);
      item.remove();
      say(status, `Deleted ${done.name} and ${plural(done.blocks_deleted, "block")}.`);
      if (!list.children.length) await load(null);
    } catch (error) {
      say(status, error, "error");
    }
  }

  await load(null);
}

function stat(label, value) {
  return h("div", {}, h("dt", {}, label), h("dd", {}, value));
}

function createForm(created) {
  const status = notice();
  const name = h("input", { name: "name", autocomplete: "off", maxlength: "100", placeholder: "e.g. my-project" });
  const system = h("textarea", { name: "system", rows: "3", placeholder: "Empty: Engram's default system prompt" });
  const persona = h("textarea", { name: "persona", rows: "2", placeholder: "Empty: Engram's default persona" });
  const human = h("textarea", { name: "human", rows: "2", placeholder: "Empty: Engram's default human block" });
  const form = h(
    "form",
    {
      class: "card create",
      onsubmit: async (event) => {
        event.preventDefault();
        const blocks = [
          ["persona", persona.value],
          ["human", human.value],
        ]
          .filter(([, value]) => value.trim())
          .map(([label, value]) => ({ label, value }));
        try {
          const agent = await api.post("/agents", {
            name: name.value.trim() || undefined,
            system: system.value.trim() || undefined,
            memory_blocks: blocks,
          });
          form.reset();
          say(status, `Created ${agent.name}.`);
          await created();
        } catch (error) {
          say(status, error, "error");
        }
      },
    },
    h("h2", {}, "New agent"),
    h("div", { class: "grid" }, field("Name", name, "letters, digits, '-', '_' and '.'"), field("System prompt", system)),
    h("div", { class: "grid" }, field("Persona", persona, "who the agent is"), field("Human", human, "who it talks with")),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Create agent")),
    status,
  );
  return form;
}
