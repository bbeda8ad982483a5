"""The one table ``make bench`` prints, and the verdicts against the issue's targets."""
from __future__ import annotations

from dataclasses import dataclass

HEADERS = ("part", "measurement", "CSR Proxy", "baseline", "ratio", "target", "met")


@dataclass
class Row:
    part: str
    measurement: str
    service: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    met: bool | None = None  # None: informative row, no target

    def cells(self) -> tuple[str, ...]:
        met = "" if self.met is None else ("yes" if self.met else "NO")
        return (self.part, self.measurement, self.service, self.baseline, self.ratio,
                self.target, met)


def render(rows: list[Row]) -> str:
    """A plain-text table (also valid Markdown), widths fitted to the content."""
    table = [HEADERS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    out = [line(HEADERS), rule]
    previous = None
    for row in rows:
        cells = row.cells()
        if previous is not None and row.part == previous:
            cells = ("", *cells[1:])
        out.append(line(cells))
        previous = row.part
    return "\n".join(out)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"
