"""``python -m smoothcert``: the same command line as the ``smoothcert`` script."""
import sys

from .cli.main import main

sys.exit(main())
