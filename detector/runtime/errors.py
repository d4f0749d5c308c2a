"""Errors the runtime reports to the command line."""


class RulesNotLoadedError(ValueError):
    """A rule set with errors: the message lists them; nothing is swapped in."""


class PipelineFailedError(RuntimeError):
    """The pipeline could not go on (not even dead-lettering a record): the service stopped."""


class WorkerStartError(RuntimeError):
    """A worker process of the service could not start (the message says why)."""


class WorkerDiedError(RuntimeError):
    """A worker process of the service ended while the service still needed it."""
