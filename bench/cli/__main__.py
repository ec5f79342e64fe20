"""``python -m bench.cli``: the same as ``dasm-bench``."""

import sys

from bench.cli.main import main

sys.exit(main())
