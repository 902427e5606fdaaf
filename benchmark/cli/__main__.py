"""``python -m benchmark.cli``: the same as the ``bench`` console script."""

import sys

from benchmark.cli import main

sys.exit(main())
