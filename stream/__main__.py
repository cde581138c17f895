"""``python -m stream``: the same as the ``streamrec`` command."""

import sys

from stream.cli import main

sys.exit(main())
