"""The error every serverless target's deploy and teardown raise, so callers (the CLI, the REST routes, the studio)
catch one type whatever the provider."""


class DeployError(RuntimeError):
    """A deploy or teardown did not happen; the message says why and what to do."""
