"""The one exception type for a user's configuration mistake (no imports: envs may raise it).

Entry points (``config/cli.py``) print a ``ConfigError`` as a short message on stderr, without a
traceback, and exit with status 2. Its text names the config key and says how to fix it.
"""


class ConfigError(ValueError):
    """A value the user chose (a config key, a CLI override, an env kwarg) cannot work."""
