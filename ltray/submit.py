"""``python -m ltray.submit``: a sweep submitted to a Ray cluster as a Ray Job (``ltray.sweep.submit``)."""

import sys

from ltray.sweep.submit import main

if __name__ == "__main__":
    sys.exit(main())
