import sys

from lpcnet.cli import main

sys.exit(main())
