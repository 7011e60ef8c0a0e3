import sys

from deploy.cost import main

sys.exit(main())
