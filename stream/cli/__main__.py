"""``python -m stream.cli``: the same as the ``streamrec`` command (what ``bench`` and the tests spawn)."""

import sys

from stream.cli import main

sys.exit(main())
