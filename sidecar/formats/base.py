"""What every access-log format is: a parser from one text line to a RawRequest, and a shape
that formats/rewrite.py uses to write a clean record back in the same format."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from sidecar.record import RawRequest


@dataclass(frozen=True, slots=True)
class Literal:
    text: str


@dataclass(frozen=True, slots=True)
class Variable:
    name: str  # as written in the format (`http_x_forwarded_for`, or a JSON key)
    canonical: str | None  # what it means (formats/fields.py), None when it is not read


Segment = Literal | Variable


class LineFormat(ABC):
    """A parsed access-log format. `parse` raises `Rejected` for a line it cannot read."""

    name: str
    #: the template (text formats) or the keys (JSON formats), in the input's order
    segments: tuple[Segment, ...]
    #: "default" (nginx's \xHH escaping), "json" (a JSON object per line) or "none"
    escape: str

    @abstractmethod
    def parse(self, line: str) -> RawRequest: ...

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
