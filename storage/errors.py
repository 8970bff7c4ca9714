"""Engram's one error hierarchy. Every message says what was wrong and how to fix the call.

It lives at the bottom layer so that storage, tools and server all raise and catch the same types;
the server turns them into MCP tool errors the model can read and act on.
"""


class EngramError(Exception):
    """Base of every error Engram raises on purpose."""


class NotFoundError(EngramError):
    """An agent, block or other item does not exist for this caller."""


class ConflictError(EngramError):
    """The call collides with existing state (a name already taken, for example)."""


class InvalidInputError(EngramError):
    """An argument is malformed, empty, too long or otherwise unusable."""


class InvalidEditError(InvalidInputError):
    """A memory edit cannot apply to the block's current value (text not found, ambiguous match)."""


class ReadOnlyError(InvalidEditError):
    """The block is read-only."""


class LimitExceededError(InvalidEditError):
    """The edit would take a block past its character limit."""


class BackendUnavailableError(EngramError):
    """The database (or another backend) cannot be reached or is not usable."""


class ConfigurationError(EngramError):
    """A setting is invalid; the message names the key and where it came from."""


def sole_exception(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception inside a task group's exception group (nested or not), else the group itself.

    Callers of a function that happens to use a task group should see its error, not a wrapper.
    """
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        current = pending.pop()
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        else:
            leaves.append(current)
    return leaves[0] if len(leaves) == 1 else group


def first_line(exc: BaseException | None) -> str:
    """The first line of an exception's message (database drivers append SQL and hints below it)."""
    text = str(exc).strip() if exc is not None else ""
    return text.splitlines()[0] if text else type(exc).__name__
