"""``python -m phigate`` is the same as the ``phigate`` console script."""

import sys

from phigate.cli.main import main

sys.exit(main())
