// Activity: memory growth per day as a chart, the agent's counts and embedding queue, and the server's
// health (what GET /healthz and `engram doctor` check).

import * as api from "../api.js";
import { barChart } from "../chart.js";
import { ago, count, h, plural, put } from "../dom.js";

const DAYS = 30;
const SERIES = [
  { key: "passages", label: "passages stored", className: "passages" },
  { key: "messages", label: "messages recorded", className: "messages" },
];

export async function activityView({ main, signal, agent }) {
  put(main, h("p", { class: "loading" }, "Loading activity…"));
  const base = `/agents/${api.seg(agent.id)}`;
  const [activity, statistics, status] = await Promise.allSettled([
    api.get(`${base}/activity`, { days: DAYS }, signal),
    api.get(`${base}/statistics`, {}, signal),
    api.get("/status", {}, signal),
  ]);
  if (signal.aborted) return;
  const refresh = h("button", { type: "button", class: "quiet", onclick: () => activityView({ main, signal, agent }) }, "Refresh");
  put(
    main,
    h("section", { class: "card" }, h("h2", {}, `Memory growth, last ${DAYS} days`), settled(activity, growth)),
    h(
      "div",
      { class: "grid" },
      h("section", { class: "card" }, h("h2", {}, "This agent"), settled(statistics, numbers)),
      h("section", { class: "card" }, h("h2", {}, "Server health"), settled(status, health), refresh),
    ),
  );
}

function settled(result, show) {
  return result.status === "fulfilled" ? show(result.value) : h("p", { class: "notice error", role: "alert" }, result.reason.message);
}

function growth({ days }) {
  const passages = days.reduce((sum, day) => sum + day.passages, 0);
  const messages = days.reduce((sum, day) => sum + day.messages, 0);
  const caption = `${plural(passages, "passage")} and ${plural(messages, "message")} stored in the last ${days.length} days`;
  return [
    h("p", { class: "muted" }, `${caption} (days in UTC).`),
    passages + messages ? barChart(days, SERIES, caption) : h("p", { class: "empty" }, "Nothing stored in these days yet."),
    h(
      "details",
      {},
      h("summary", {}, "The numbers as a table"),
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Day"), SERIES.map(({ label }) => h("th", { scope: "col" }, label)))),
        h(
          "tbody",
          {},
          days
            .filter((day) => day.passages || day.messages)
            .map((day) => h("tr", {}, h("th", { scope: "row" }, day.day), SERIES.map(({ key }) => h("td", {}, count(day[key]))))),
        ),
      ),
    ),
  ];
}

function numbers(found) {
  return h(
    "dl",
    { class: "facts" },
    fact("Blocks", count(found.blocks)),
    fact("Passages", count(found.passages)),
    fact("Conversations", count(found.conversations)),
    fact("Messages", count(found.messages)),
    fact("Last activity", ago(found.last_activity)),
    fact(
      "Waiting for embedding",
      found.messages_waiting_for_embedding
        ? `${plural(found.messages_waiting_for_embedding, "message")} (searchable by words until embedded)`
        : "none",
    ),
  );
}

function health(found) {
  return [
    h(
      "p",
      { class: `notice ${found.ok ? "ok" : "error"}` },
      found.ok ? "Healthy: the database answers with the current schema." : "Not healthy: see below, and run engram doctor on the server.",
    ),
    h(
      "dl",
      { class: "facts" },
      fact("Database", check(found.database === "ok", found.database)),
      fact("Schema", check(Boolean(found.schema_current), found.schema ? `${found.schema}${found.schema_current ? " (current)" : " (not current)"}` : "unknown")),
      fact("Embedding model", check(true, `${found.embedder}${found.embedder_loaded ? ", loaded" : ", loads on first use"}`)),
      fact(
        "Embedding queue",
        found.messages_waiting_for_embedding ? `${plural(found.messages_waiting_for_embedding, "message")} waiting` : "empty",
      ),
    ),
  ];
}

function check(ok, text) {
  return h("span", { class: ok ? "good" : "bad" }, ok ? "✓ " : "✗ ", text);
}

function fact(label, value) {
  return h("div", {}, h("dt", {}, label), h("dd", {}, value));
}
