import sys

from asrd.cli import main

sys.exit(main())
