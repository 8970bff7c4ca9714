// Engram's memory browser: the shell (sign-in, routes, the agent's tabs). Each view lives in views/.
// Routes are URL fragments (#/agents, #/agent/<id>/<tab>), so the server only ever serves one page.

import * as api from "./api.js";
import { h, put, say } from "./dom.js";
import { activityView } from "./views/activity.js";
import { agentsView } from "./views/agents.js";
import { archivalView } from "./views/archival.js";
import { chatView } from "./views/chat.js";
import { conversationsView } from "./views/conversations.js";
import { coreView } from "./views/core.js";

const main = document.getElementById("main");
const session = document.getElementById("session");
const TABS = [
  ["core", "Core memory", coreView],
  ["archival", "Archival memory", archivalView],
  ["conversations", "Conversations", conversationsView],
  ["activity", "Activity", activityView],
  ["chat", "Chat", chatView],
];

let current = new AbortController();
let signedIn = false;

async function start() {
  window.addEventListener("hashchange", route);
  window.addEventListener("engram:unauthorized", (event) => signIn(event.detail));
  put(main, h("p", { class: "loading" }, "Connecting to Engram…"));
  let answer;
  try {
    answer = await api.probe(api.token());
  } catch (error) {
    return failed(`Engram does not answer (${error.message}). Is the server still running?`);
  }
  if (answer.ok) {
    signedIn = true;
    showSession();
    return route();
  }
  if (answer.status === 401) {
    const hadToken = Boolean(api.token());
    api.setToken(null);
    return signIn(hadToken ? answer.detail : null);
  }
  return failed(answer.detail);
}

function failed(message) {
  put(main, h("h1", {}, "Engram is not ready"), h("p", { class: "notice error", role: "alert" }, message));
}

function showSession() {
  put(
    session,
    api.token()
      ? h("button", { type: "button", class: "quiet", onclick: () => signIn(null, true) }, "Sign out")
      : h("span", { class: "muted", title: "No tokens are configured: this server serves the local user on loopback only" }, "local user"),
  );
}

/** The token form. A wrong token is refused with the API's message; a right one is kept in this tab. */
function signIn(problem, signingOut = false) {
  current.abort();
  signedIn = false;
  api.setToken(null);
  put(session);
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
  });
  const status = h("p", { class: "notice", role: "status" });
  if (problem) say(status, problem, "error");
  else if (signingOut) say(status, "Signed out: the token is gone from this tab.");
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    {
      class: "card signin",
      onsubmit: async (event) => {
        event.preventDefault();
        button.disabled = true;
        say(status, "Checking the token…");
        try {
          const answer = await api.probe(input.value.trim());
          if (!answer.ok) {
            say(status, answer.detail, "error");
            input.select();
            return;
          }
          api.setToken(input.value.trim());
          signedIn = true;
          showSession();
          route();
        } catch (error) {
          say(status, error, "error");
        } finally {
          button.disabled = false;
        }
      },
    },
    h("h1", {}, "Sign in to Engram"),
    h(
      "p",
      {},
      "This server needs a token. Create one on the server with ",
      h("code", {}, "engram tokens create NAME"),
      " (it prints the token once). The token stays in this browser tab only and is sent with each request.",
    ),
    h("label", { for: "token" }, "Token"),
    input,
    h("div", { class: "actions" }, button),
    status,
  );
  put(main, form);
  input.focus();
}

function parse() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "agent" && parts[1]) return { agent: parts[1], tab: parts[2] || "core", rest: parts.slice(3) };
  return { agent: null };
}

async function route() {
  if (!signedIn) return;
  current.abort();
  current = new AbortController();
  const { signal } = current;
  const where = parse();
  window.scrollTo(0, 0);
  if (!where.agent) {
    document.title = "Agents · Engram";
    return run(agentsView, { main, signal }, main);
  }
  const tab = TABS.find(([name]) => name === where.tab) || TABS[0];
  put(main, h("p", { class: "loading" }, "Loading the agent…"));
  let agent;
  try {
    agent = await api.get(`/agents/${api.seg(where.agent)}`, {}, signal);
  } catch (error) {
    if (error.name === "AbortError") return;
    return put(
      main,
      h("h1", {}, "No such agent"),
      h("p", { class: "notice error", role: "alert" }, error.message),
      h("p", {}, h("a", { href: "#/agents" }, "Back to the agents")),
    );
  }
  document.title = `${agent.name} · ${tab[1]} · Engram`;
  const body = h("section", { class: "tab", "aria-label": tab[1] });
  put(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/agents" }, "Agents"), " / "),
    h("h1", { tabindex: "-1", class: "agent-name" }, agent.name),
    agent.description ? h("p", { class: "muted" }, agent.description) : null,
    h(
      "nav",
      { class: "tabs", "aria-label": "Agent" },
      TABS.map(([name, label]) =>
        h("a", { href: `#/agent/${api.seg(agent.id)}/${name}`, "aria-current": name === tab[0] ? "page" : null }, label),
      ),
    ),
    body,
  );
  return run(tab[2], { main: body, signal, agent, rest: where.rest }, main);
}

async function run(view, context, focusWithin) {
  try {
    await view(context);
  } catch (error) {
    if (error.name === "AbortError" || context.signal.aborted) return;
    put(context.main, h("p", { class: "notice error", role: "alert" }, error.message));
  }
  const heading = focusWithin.querySelector("h1");
  if (heading && document.activeElement === document.body) heading.focus({ preventScroll: true });
}

start();
