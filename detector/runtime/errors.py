"""Errors the runtime reports to the command line."""


class RulesNotLoadedError(ValueError):
    """A rule set with errors: the message lists them; nothing is swapped in."""
