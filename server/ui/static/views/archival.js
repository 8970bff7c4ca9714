// Archival memory: hybrid search with tag and date filters (each hit's score and which leg found it),
// newest-first browsing page by page, adding passages with tags, deleting them.

import * as api from "../api.js";
import { ago, confirmAction, field, h, notice, parseTags, plural, put, say, tagList } from "../dom.js";

const PAGE = 20;

export async function archivalView({ main, signal, agent }) {
  const base = `/agents/${api.seg(agent.id)}/archival-memory`;
  const status = notice();
  const results = h("section", { class: "passages", "aria-live": "polite", "aria-label": "Passages" });

  const query = h("input", { type: "search", name: "query", placeholder: "What to look for, in words or as a description" });
  const tags = h("input", { name: "tags", placeholder: "e.g. orders, travel", autocomplete: "off" });
  const mode = h(
    "select",
    { name: "tag_match_mode" },
    h("option", { value: "any" }, "any tag"),
    h("option", { value: "all" }, "all tags"),
  );
  const from = h("input", { type: "date", name: "from" });
  const to = h("input", { type: "date", name: "to" });
  const search = h(
    "form",
    { class: "card search", role: "search", onsubmit: (event) => (event.preventDefault(), find()) },
    h("div", { class: "field wide" }, h("label", { for: "archival-query" }, "Search archival memory"), Object.assign(query, { id: "archival-query" })),
    h("div", { class: "grid four" }, field("Tags", tags, "comma-separated"), field("Match", mode), field("From", from), field("To", to)),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit" }, "Search"),
      h("button", { type: "button", class: "quiet", onclick: () => (search.reset(), browse([null])) }, "Clear: newest first"),
    ),
  );

  const text = h("textarea", { name: "text", rows: "3", required: true, placeholder: "A fact, a note or an excerpt, self-contained" });
  const newTags = h("input", { name: "tags", autocomplete: "off", placeholder: "e.g. orders" });
  const add = h(
    "details",
    { class: "card add" },
    h("summary", {}, "Add a passage"),
    h(
      "form",
      {
        onsubmit: async (event) => {
          event.preventDefault();
          try {
            await api.post(base, { text: text.value, tags: parseTags(newTags.value) });
            event.target.reset();
            say(status, "Stored. It is searchable by its words now and by its meaning once embedded.");
            await browse([null]);
          } catch (error) {
            say(status, error, "error");
          }
        },
      },
      field("Text", text),
      field("Tags", newTags, "comma-separated"),
      h("div", { class: "actions" }, h("button", { type: "submit" }, "Add passage")),
    ),
  );

  put(main, search, add, status, results);

  async function find() {
    if (!query.value.trim()) return browse([null]);
    put(results, h("p", { class: "loading" }, "Searching…"));
    try {
      const found = await api.get(
        `${base}/search`,
        {
          query: query.value,
          top_k: 20,
          tags: parseTags(tags.value),
          tag_match_mode: mode.value,
          start_datetime: from.value ? new Date(`${from.value}T00:00:00`).toISOString() : null,
          end_datetime: to.value ? new Date(`${to.value}T23:59:59.999`).toISOString() : null,
        },
        signal,
      );
      put(
        results,
        h("h2", {}, `${plural(found.count, "passage")} for “${query.value}”, best first`),
        found.results.length
          ? h("ol", { class: "hits" }, found.results.map((hit) => passage({ ...hit, text: hit.content, created_at: hit.timestamp })))
          : h("p", { class: "empty" }, "Nothing found. Try other words, fewer tags or a wider date range."),
      );
    } catch (error) {
      if (error.name !== "AbortError") put(results, h("p", { class: "notice error", role: "alert" }, error.message));
    }
  }

  // cursors[i] is the `after` of page i (null for the newest page); the last one is the page shown.
  async function browse(cursors) {
    put(results, h("p", { class: "loading" }, "Loading passages…"));
    const after = cursors[cursors.length - 1];
    const page = await api.get(base, { ascending: false, limit: PAGE, after }, signal);
    const older = h(
      "button",
      { type: "button", class: "quiet", disabled: page.length < PAGE, onclick: () => browse([...cursors, page[page.length - 1].id]) },
      "Older →",
    );
    const newer = h(
      "button",
      { type: "button", class: "quiet", disabled: cursors.length === 1, onclick: () => browse(cursors.slice(0, -1)) },
      "← Newer",
    );
    put(
      results,
      h("h2", {}, cursors.length === 1 ? "Newest passages" : `Older passages, page ${cursors.length}`),
      page.length
        ? h("ul", { class: "hits" }, page.map(passage))
        : h("p", { class: "empty" }, "No passages yet. Add one above, or let a host call archival_memory_insert or engram ingest."),
      h("nav", { class: "pager", "aria-label": "Pages" }, newer, older),
    );
  }

  function passage(item) {
    const row = h(
      "li",
      { class: "card passage" },
      h("div", { class: "text" }, item.text),
      h(
        "div",
        { class: "meta" },
        item.score !== undefined ? h("span", { class: "score", title: "Relevance from 0 to 1: 1 when the passage holds every word searched for, else its closeness in meaning" }, `relevance ${item.score.toFixed(2)}`) : null,
        (item.found_by || []).map((leg) => h("span", { class: `badge leg-${leg}`, title: `found by ${leg}` }, leg)),
        ago(item.created_at),
        tagList(item.tags),
        h(
          "button",
          { type: "button", class: "danger quiet", "aria-label": "Delete this passage", onclick: () => remove(item, row) },
          "Delete",
        ),
      ),
    );
    return row;
  }

  async function remove(item, row) {
    const preview = item.text.length > 120 ? `${item.text.slice(0, 120)}…` : item.text;
    const sure = await confirmAction({ title: "Delete this passage?", message: preview, action: "Delete passage" });
    if (!sure) return;
    try {
      await api.remove(`${base}/${api.seg(item.id)}`);
      row.remove();
      say(status, "Deleted the passage.");
    } catch (error) {
      say(status, error, "error");
    }
  }

  await browse([null]);
}
