"""``python -m ltray.query``: SQL over a study's tables (``ltray.report.query``)."""

import sys

from ltray.report.query import main

if __name__ == "__main__":
    sys.exit(main())
