"""``python -m jsoftmax.examples``: run every example; non-zero exit if any fails."""

import sys

from jsoftmax.examples import tour

if __name__ == "__main__":
    sys.exit(tour.main())
