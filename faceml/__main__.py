import sys

from faceml.cli import main

sys.exit(main())
