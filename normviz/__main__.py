import sys

from normviz.cli import main

sys.exit(main())
