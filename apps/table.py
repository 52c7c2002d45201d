"""Plain-text tables for results people compare, and counted nouns for the lines around them."""
from __future__ import annotations


def plural(n, word: str, many: str | None = None) -> str:
    """'1 thread', '2 threads', 'all threads' (n not a number: as given); `many` for irregular plurals."""
    if not isinstance(n, int):
        return f"{n} {many or word + 's'}"
    return f"{n} {word if n == 1 else (many or word + 's')}"


def number(v: float, fmt: str) -> str:
    """format(v, fmt) without the minus of a value that rounds to zero ("-0.0" reads as a loss)."""
    s = format(v, fmt)
    return s[1:] if s.startswith("-") and not any(c in s for c in "123456789") else s


def format_table(headers: list[str], rows: list[list], floatfmt: str = ".3f") -> str:
    def cell(v) -> str:
        if isinstance(v, float):
            return "nan" if v != v else number(v, floatfmt)
        return str(v)

    cells = [[cell(v) for v in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda vals: "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(vals, widths)))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def markdown_table(headers: list[str], rows: list[list], floatfmt: str = ".1f") -> str:
    """A GitHub-flavoured Markdown table; None and nan show as '–', numbers right-aligned."""
    def cell(v) -> str:
        if v is None or (isinstance(v, float) and v != v):
            return "–"
        if isinstance(v, float):
            return number(v, floatfmt)
        return str(v).replace("|", "\\|").replace("\n", " ")

    numeric = [bool(rows) and all(isinstance(r[i], (int, float)) or r[i] is None for r in rows)
               for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows])
