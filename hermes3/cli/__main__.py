import sys

from hermes3.cli.main import main

sys.exit(main())
