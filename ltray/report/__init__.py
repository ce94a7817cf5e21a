"""Reporting a stored study: ``python -m ltray.report`` (tables), ``python -m ltray.query`` (SQL).

- ``select``: the one selection (best configuration per method on validation) and the one
  ``method_summary`` that the sweep's summary, the report and the dashboard all render;
- ``tables``: the numbers of each table (LA Table 3, shifts, paired comparison, protocol gap);
  ``budget``: each method's selected configuration after n configurations (budget curves);
- ``layouts``: each table as rows of cells; ``render``: cells written as text, LaTeX, Markdown
  or HTML with provenance; ``cli``: the command; ``query``: SQL (DuckDB) over the tables.
"""

from ltray.report.budget import budget_curves, search_settings
from ltray.report.layouts import gap_lines, paired_caption, paired_lines, report_tables
from ltray.report.select import SUMMARY_COLUMNS, best_configurations, configurations, method_summary
from ltray.report.tables import (GROUPS, expert_table, gap_table, group_masks, la_table, paired_table, shift_table,
                                 train_counts)

__all__ = ["GROUPS", "SUMMARY_COLUMNS", "best_configurations", "budget_curves", "configurations", "expert_table", "gap_lines",
           "gap_table", "group_masks", "la_table", "method_summary", "paired_caption", "paired_lines", "paired_table",
           "report_tables", "search_settings", "shift_table", "train_counts"]
