"""python -m higherhrnet: the `higherhrnet` command."""
import sys

from .cli import main

sys.exit(main())
