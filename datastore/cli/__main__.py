"""``python -m medstore.datastore.cli``: the same command as ``medstore``."""

import sys

from .main import main

if __name__ == "__main__":
    sys.exit(main())
