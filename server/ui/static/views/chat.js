// Chat with the built-in agent in the agent's default conversation, its answer streamed as it is stored
// (POST /v1/agents/{id}/messages with "streaming": true: server-sent events read from fetch's body).

import * as api from "../api.js";
import { h, notice, put, say } from "../dom.js";
import { entry } from "./conversations.js";

const RECENT = 20;

export async function chatView({ main, signal, agent }) {
  const base = `/agents/${api.seg(agent.id)}`;
  const status = notice();
  const log = h("ol", { class: "transcript chat-log", "aria-label": "The default conversation", "aria-live": "polite" });
  const input = h("textarea", {
    id: "chat-input",
    name: "message",
    rows: "3",
    required: true,
    placeholder: "Write to the agent; Ctrl+Enter sends",
  });
  const sendButton = h("button", { type: "submit" }, "Send");
  const stopButton = h("button", { type: "button", class: "quiet", hidden: true }, "Stop");
  let running = null;

  const form = h(
    "form",
    { class: "card composer", onsubmit: (event) => (event.preventDefault(), send()) },
    h("label", { for: input.id }, "Message"),
    input,
    h("div", { class: "actions" }, sendButton, stopButton),
  );
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });
  stopButton.addEventListener("click", () => running?.abort());
  signal.addEventListener("abort", () => running?.abort());

  put(
    main,
    agent.llm_config.model
      ? h("p", { class: "muted" }, "The built-in agent answers with ", h("code", {}, agent.llm_config.model), " and edits this agent's memory as it goes.")
      : h(
          "p",
          { class: "notice warn" },
          "No model is configured for the built-in agent: set llm_model in config.toml (or ENGRAM_LLM_MODEL) on the server, or give this agent a model.",
        ),
    log,
    form,
    status,
  );

  const recent = await api.get(`${base}/messages`, { order: "desc", limit: RECENT }, signal);
  if (!recent.length) log.append(h("li", { class: "empty" }, "No messages in the default conversation yet: say something."));
  for (const message of recent.reverse()) log.append(entry(message));
  log.lastElementChild?.scrollIntoView({ block: "nearest" });

  async function send() {
    const text = input.value.trim();
    if (!text || running) return;
    log.querySelector(".empty")?.remove();
    log.append(entry({ message_type: "user_message", content: text, date: new Date().toISOString() }));
    input.value = "";
    running = new AbortController();
    sendButton.disabled = true;
    stopButton.hidden = false;
    say(status, "The agent is answering…");
    let answered = false;
    try {
      for await (const { event, data } of api.events(`${base}/messages`, { input: text, streaming: true }, running.signal)) {
        if (event === "error") throw new api.ApiError(500, data.detail);
        if (["assistant_message", "tool_call_message", "tool_return_message"].includes(data.message_type)) {
          answered ||= data.message_type === "assistant_message";
          const item = entry(data);
          log.append(item);
          item.scrollIntoView({ block: "nearest" });
        }
      }
      say(status, answered ? "Done." : "The agent finished without a reply.");
    } catch (error) {
      if (error.name === "AbortError") say(status, "Stopped. What the agent stored so far stays in the conversation.");
      else say(status, error, "error");
    } finally {
      running = null;
      sendButton.disabled = false;
      stopButton.hidden = true;
      if (!signal.aborted) input.focus();
    }
  }
}
