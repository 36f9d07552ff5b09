import sys

from agenthq_devctl.cli import main

sys.exit(main())
