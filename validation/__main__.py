"""``python -m validation``: run the validation scenarios and write docs/validation.md."""

import sys

from .run import main

sys.exit(main())
