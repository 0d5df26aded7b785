"""The one formatter of the comparison tables: `learnkd check all`'s (``pipeline.comparison_table``) and
`learnkd reference`'s (``report.format_table``), as aligned text or as a Markdown table for the README."""

from __future__ import annotations


def text_table(header: list[str], rows: list[list[str]], widths: list[int] | None = None, gap: str = "  ",
               markdown: bool = False) -> str:
    """The first column left-aligned, the others right-aligned, each ``widths[i]`` wide (default: its longest
    cell), joined by ``gap``; or a Markdown table with the numbers' columns right-aligned."""
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = widths or [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return gap.join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join(line(cells) for cells in [header, *rows])
