"""The errors a user can cause, one type per kind, caught and printed by the CLI.

Messages never carry input data: they name a key, a file or a reason, never a line.
"""


class SidecarError(Exception):
    """Base class: the message is one clear line meant for the user."""

    exit_code = 1


class ConfigError(SidecarError):
    """A bad config key or value, a missing database: exit 2, naming the key."""

    exit_code = 2


class UsageError(SidecarError):
    """A bad command line (unreadable input file, unknown format name): exit 2."""

    exit_code = 2


class SinkError(SidecarError):
    """A storage failure that could not be buffered."""

    exit_code = 1


class OutputError(SidecarError):
    """A write to stdout or an output file failed (a full disk): exit 1, naming the output."""

    exit_code = 1
