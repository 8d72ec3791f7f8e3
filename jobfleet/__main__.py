"""``python -m jobfleet``: the same as the ``jobfleet`` command."""

import sys

from jobfleet.cli import main

if __name__ == "__main__":
    sys.exit(main())
