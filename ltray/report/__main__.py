"""``python -m ltray.report``: tables from a stored study (``ltray.report.cli``)."""

import sys

from ltray.report.cli import main

sys.exit(main())
