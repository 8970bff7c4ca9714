"""The text that tells a host how to use Engram's memory (sent as the server's `instructions`)."""

INSTRUCTIONS = """\
Engram is your long-term memory. It persists across conversations, host windows and restarts.

Core memory is a few small text blocks that belong in your context:
- 'persona': who you are and how to behave with this user.
- 'human': durable facts about the user (name, preferences, projects, decisions).
At the start of a conversation, call core_memory_view (or read engram://agents/{agent}/memory) and keep
what it shows in mind. Save durable facts as soon as you learn them: core_memory_append adds a line,
core_memory_replace or memory_replace corrects outdated text, memory_insert places a line at a position,
and memory_rethink rewrites a whole block to reorganise or condense it. Each block has a character
limit; when an edit is refused for size, condense the block with memory_rethink and try again.
Edits are not silent: tell the user what you remembered when it matters to them.

Agents keep memories apart. Every call uses the default agent unless it names `agent`; use one agent
per project or purpose (agent_create, agent_list) so that memories never mix.

Never store secrets such as passwords, API keys or tokens in memory.
"""
