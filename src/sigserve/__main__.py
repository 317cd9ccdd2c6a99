import sys

from sigserve.cli import main

sys.exit(main())
