"""``python -m ltray.sweep``: the study command line (``ltray.sweep.cli``)."""

import sys

from ltray.sweep.cli import main

sys.exit(main())
