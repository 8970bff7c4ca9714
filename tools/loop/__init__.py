"""The built-in agent behind `send_message`: its loop, prompt, model functions, summarizer and LLM seam."""
