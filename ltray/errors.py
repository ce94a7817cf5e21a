"""The one exception type for mistakes a user can make (bad experiment, CLI value, path, data)."""


class LtrayError(ValueError):
    """A problem with the user's input; the message says what to do about it."""
