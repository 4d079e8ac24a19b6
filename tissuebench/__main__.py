import sys

from tissuebench.cli import main

sys.exit(main())
