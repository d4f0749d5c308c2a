"""Errors the runtime reports to the command line."""


class RulesNotLoadedError(ValueError):
    """A rule set with errors: the message lists them; nothing is swapped in."""


class PipelineFailedError(RuntimeError):
    """The pipeline could not go on (not even dead-lettering a record): the service stopped."""
