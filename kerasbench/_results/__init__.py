"""Results: what a benchmark run produced, kept, shown and compared.

This package owns `BenchmarkResult` (one run: its `RunConfig`, figures and
provenance) and everything done with results once they exist: the JSON
Lines results file (`append_result`, `read_results`, `ResultsFileError`;
format in `kerasbench._results.store`), the bundled published baselines
(`list_baselines`, `load_baseline`), and the outputs of ``kerasbench
report`` and ``kerasbench compare``: Markdown tables (`markdown_tables`),
the PNG chart (`plot_results`), the report folder (`write_report`), CSV
(`write_csv`) and side-by-side comparisons (`compare`, `Comparison`). It
runs nothing and imports no framework; matplotlib loads only to draw.

Modules, from the bottom up: ``result`` (the record), ``files`` (safe
writes and reads), ``store`` (the file format), ``baselines``,
``formatting`` and ``selection`` (shared by the outputs), ``tables``,
``efficiency`` (the efficiency figures in tables, comparisons and CSV),
``chart``, ``report``, ``export`` (CSV), ``compare``.
"""

from kerasbench._results.baselines import list_baselines, load_baseline
from kerasbench._results.chart import plot_results
from kerasbench._results.compare import Comparison, compare
from kerasbench._results.export import write_csv
from kerasbench._results.report import write_report
from kerasbench._results.result import BenchmarkResult
from kerasbench._results.store import ResultsFileError, append_result, read_results
from kerasbench._results.tables import markdown_tables

__all__ = [
    "BenchmarkResult",
    "Comparison",
    "ResultsFileError",
    "append_result",
    "compare",
    "list_baselines",
    "load_baseline",
    "markdown_tables",
    "plot_results",
    "read_results",
    "write_csv",
    "write_report",
]
