// Conversations (recall memory): the list, a transcript page by page with the built-in agent's summary
// and where its context starts, and search across every conversation with the hit highlighted between
// the turns around it.

import * as api from "../api.js";
import { ago, count, h, highlight, notice, plural, put, say, when } from "../dom.js";

const PAGE = 50;
const SEARCH_PAGE = 10;

export async function conversationsView(context) {
  const [name] = context.rest || [];
  return name ? transcript(context, name) : overview(context);
}

function link(agent, name) {
  return `#/agent/${api.seg(agent.id)}/conversations/${api.seg(name)}`;
}

async function overview({ main, signal, agent }) {
  const base = `/agents/${api.seg(agent.id)}`;
  const query = h("input", { type: "search", id: "conversation-query", name: "query", placeholder: "Words, names, numbers, or a description" });
  const results = h("section", { class: "search-results", "aria-live": "polite", "aria-label": "Search results" });
  const list = h("section", { "aria-label": "Conversations" }, h("p", { class: "loading" }, "Loading conversations…"));
  put(
    main,
    h(
      "form",
      { class: "card search", role: "search", onsubmit: (event) => (event.preventDefault(), search({ page: 1, limit: SEARCH_PAGE }, [])) },
      h("div", { class: "field wide" }, h("label", { for: query.id }, "Search all conversations"), query),
      h("div", { class: "actions" }, h("button", { type: "submit" }, "Search")),
    ),
    results,
    list,
  );

  // An answer fits a token budget, so a page may hold fewer matches than asked for: "More matches" asks
  // for the answer's `next` (the page and limit that start right after its last hit, so that none is
  // skipped) and "Better matches" goes back along the pages already seen (`earlier`).
  async function search(at, earlier) {
    if (!query.value.trim()) return put(results);
    put(results, h("p", { class: "loading" }, "Searching…"));
    const asked = query.value;
    try {
      const found = await api.get(`${base}/conversations/search`, { query: asked, limit: at.limit, page: at.page }, signal);
      const first = (at.page - 1) * at.limit + 1;
      const last = first + found.results.length - 1;
      put(
        results,
        h("h2", {}, `Messages about “${asked}”`),
        found.results.length
          ? h("ol", { class: "hits" }, found.results.map((hit) => searchHit(agent, hit, asked)))
          : h("p", { class: "empty" }, "No message matches. Try other words; a description works too."),
        h(
          "nav",
          { class: "pager", "aria-label": "Result pages" },
          h(
            "button",
            { type: "button", class: "quiet", disabled: !earlier.length, onclick: () => search(earlier[earlier.length - 1], earlier.slice(0, -1)) },
            "← Better matches",
          ),
          h("span", { class: "muted" }, found.results.length ? `matches ${count(first)}–${count(last)}` : ""),
          h("button", { type: "button", class: "quiet", disabled: !found.next, onclick: () => search(found.next, [...earlier, at]) }, "More matches →"),
        ),
      );
    } catch (error) {
      if (error.name !== "AbortError") put(results, h("p", { class: "notice error", role: "alert" }, error.message));
    }
  }

  const conversations = await api.all(`${base}/conversations`, { order: "desc" }, signal);
  conversations.sort((a, b) => (b.last_message_at || b.created_at).localeCompare(a.last_message_at || a.created_at));
  put(
    list,
    h("h2", {}, plural(conversations.length, "conversation")),
    conversations.length
      ? h(
          "ul",
          { class: "conversations" },
          conversations.map((conversation) =>
            h(
              "li",
              { class: "card conversation" },
              h("h3", {}, h("a", { href: link(agent, conversation.name) }, conversation.title || conversation.name)),
              h(
                "p",
                { class: "meta" },
                conversation.title && conversation.title !== conversation.name ? h("code", {}, conversation.name) : null,
                h("span", {}, plural(conversation.messages, "message")),
                conversation.source ? h("span", { class: "badge" }, conversation.source) : null,
                h("span", {}, "last message ", ago(conversation.last_message_at)),
                conversation.context_start > 1
                  ? h("span", { class: "muted" }, `the built-in agent's context starts at message ${count(conversation.context_start)}`)
                  : null,
              ),
            ),
          ),
        )
      : h(
          "p",
          { class: "empty" },
          "No conversations yet. Chat with the agent, record a host's conversations (engram record), or import chat exports (engram import).",
        ),
  );
}

function searchHit(agent, hit, query) {
  return h(
    "li",
    { class: "card hit" },
    h(
      "p",
      { class: "meta" },
      h("a", { href: link(agent, hit.conversation) }, hit.conversation),
      h("span", { class: `role role-${hit.role}` }, hit.role),
      h("span", {}, when(hit.created_at)),
      h("span", { class: "score", title: "Relevance: higher is better, 1 or more for a close match" }, `score ${hit.score.toFixed(3)}`),
    ),
    hit.before ? h("p", { class: "around" }, hit.before) : null,
    h("p", { class: "text found" }, highlight(hit.text, query), hit.truncated ? " …" : null),
    hit.after ? h("p", { class: "around" }, hit.after) : null,
  );
}

async function transcript({ main, signal, agent }, name) {
  const base = `/agents/${api.seg(agent.id)}`;
  const status = notice();
  const summary = h("aside", { class: "card summary", "aria-label": "Summary" }, h("p", { class: "loading" }, "Loading the summary…"));
  const messages = h("ol", { class: "transcript", "aria-label": "Messages" });
  const more = h("button", { type: "button", class: "quiet", hidden: true }, "Later messages");
  put(
    main,
    h("p", { class: "crumbs" }, h("a", { href: `#/agent/${api.seg(agent.id)}/conversations` }, "Conversations"), " / "),
    h("h2", { class: "conversation-name" }, name),
    summary,
    status,
    messages,
    more,
  );

  const conversations = await api.all(`${base}/conversations`, {}, signal);
  const record = conversations.find((conversation) => conversation.name === name);
  let contextStart = record ? record.context_start : 1;
  try {
    const found = await api.get(`${base}/conversations/${api.seg(name)}/summary`, {}, signal);
    contextStart = found.in_context_from ?? contextStart;
    put(
      summary,
      h(
        "h3",
        {},
        "The built-in agent's summary",
        found.kind && found.kind !== "summary" ? h("span", { class: "badge" }, found.kind) : null,
      ),
      found.summary
        ? [
            h("div", { class: "text" }, found.summary),
            h(
              "p",
              { class: "muted" },
              found.covers ? `It covers messages ${count(found.covers[0])} to ${count(found.covers[1])}. ` : "",
              `Its context starts at message ${count(contextStart)} of ${count(found.messages)}.`,
            ),
          ]
        : h(
            "p",
            { class: "muted" },
            `No summary yet: the built-in agent summarizes once its context fills up. It reads from message ${count(contextStart)}.`,
          ),
    );
  } catch (error) {
    if (error.name === "AbortError") throw error;
    put(summary, h("h3", {}, "The built-in agent's summary"), h("p", { class: "muted" }, error.message));
  }

  const seen = new Set();
  let last = null;
  async function load() {
    const page = await api.get(`${base}/messages`, { conversation_id: name, order: "asc", limit: PAGE, after: last }, signal);
    if (!last && !page.length) messages.append(h("li", { class: "empty" }, "This conversation has no messages."));
    for (const message of page) {
      if (!seen.has(message.id)) {
        seen.add(message.id);
        if (seen.size === contextStart && contextStart > 1) {
          messages.append(h("li", { class: "context-start", role: "separator" }, "The built-in agent's context starts here"));
        }
      }
      messages.append(entry(message));
    }
    last = page.length ? page[page.length - 1].id : last;
    more.hidden = page.length < PAGE;
    if (record) put(status, h("span", { class: "muted" }, `${plural(seen.size, "message")} of ${count(record.messages)} shown`));
  }
  more.addEventListener("click", () => load().catch((error) => say(status, error, "error")));
  await load();
}

export function entry(message) {
  const kind = message.message_type;
  const head = (role) => h("p", { class: "meta" }, h("span", { class: `role role-${role}` }, role), h("span", {}, when(message.date)));
  if (kind === "tool_call_message") {
    return h(
      "li",
      { class: "message tool" },
      head("tool call"),
      h("code", { class: "call" }, `${message.tool_call.name}(${message.tool_call.arguments})`),
    );
  }
  if (kind === "tool_return_message") {
    return h(
      "li",
      { class: "message tool" },
      h(
        "details",
        {},
        h("summary", {}, `${message.name || "tool"} returned`, message.status === "error" ? " an error" : ""),
        h("div", { class: "text" }, message.tool_return),
      ),
    );
  }
  const role = { user_message: "user", assistant_message: "assistant", system_message: "system" }[kind] || kind;
  return h("li", { class: `message ${role}` }, head(role), h("div", { class: "text" }, message.content));
}
