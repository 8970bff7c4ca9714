"""The text that tells a host how to use Engram's memory (sent as the server's `instructions`)."""

INSTRUCTIONS = """\
Engram is your long-term memory. It persists across conversations, host windows and restarts.

At the start of a task, call memory_context with the user's request (with an empty message at the start
of a conversation): it returns core memory and what earlier conversations and notes hold about the
request, best first and dated, within a small budget, and nothing recalled when nothing matches. Keep
what it shows in mind; if the host already put Engram's memory in your context, you need not call it.

Core memory is a few small text blocks that belong in your context:
- 'persona': who you are and how to behave with this user.
- 'human': durable facts about the user (name, preferences, projects, decisions).
core_memory_view (or engram://agents/{agent}/memory) shows them with their sizes. Save durable facts
as soon as you learn them: core_memory_append adds a line, core_memory_replace or memory_replace
corrects outdated text, memory_insert places a line at a position, and memory_rethink rewrites a whole
block to reorganise or condense it. Each block has a character
limit; when an edit is refused for size, condense the block with memory_rethink and try again.
Edits are not silent: tell the user what you remembered when it matters to them.

Archival memory holds what is too long or too many for core memory: archival_memory_insert stores a
passage, archival_memory_search finds passages by meaning and by exact words.

Recall memory is the verbatim history of past conversations. If this host does not record them itself,
record each user message and your reply with conversation_record (one conversation name per chat).
When the user refers to something said before ("what did I say about...", "last time"), or you need an
earlier detail, call conversation_search; use start_date/end_date when the user names a time.

Agents keep memories apart. Every call uses the default agent unless it names `agent`; use one agent
per project or purpose so that memories never mix (agent_create and agent_list manage them when this
server offers them; by default it offers only the tools above, and `engram serve --tools full` all of them).

Never store secrets such as passwords, API keys or tokens in memory.
"""
