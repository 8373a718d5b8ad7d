"""``python -m medstore.datastore.cli``: the same command as ``medstore``."""

import sys

from .main import main

sys.exit(main())
