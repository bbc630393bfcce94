"""``python -m kerasbench``: the same as the ``kerasbench`` command."""

import sys

from kerasbench._cli import main

if __name__ == "__main__":
    sys.exit(main())
