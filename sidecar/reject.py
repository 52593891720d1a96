"""Why a line is skipped: one closed set of reasons, used for counters, stats and metric labels."""

EMPTY = "empty"
TOO_LONG = "too_long"
INVALID_UTF8 = "invalid_utf8"
BINARY = "binary"
FORMAT_MISMATCH = "format_mismatch"
BAD_TIMESTAMP = "bad_timestamp"
BAD_IP = "bad_ip"
BAD_FIELD = "bad_field"
#: an exception no rule meant to raise (a bug, or input no rule foresaw): the line is skipped
#: and counted like any bad line, so that it costs no other line and prints nothing
INTERNAL_ERROR = "internal_error"

REASONS: tuple[str, ...] = (
    EMPTY,
    TOO_LONG,
    INVALID_UTF8,
    BINARY,
    FORMAT_MISMATCH,
    BAD_TIMESTAMP,
    BAD_IP,
    BAD_FIELD,
    INTERNAL_ERROR,
)


class Rejected(Exception):
    """Raised by a parser or a privacy rule: the line is counted under `reason` and skipped.

    Carries no input data; a reason from REASONS only.
    """

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
