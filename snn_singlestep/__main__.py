"""``python -m snn_singlestep`` runs the command line.

:mod:`snn_singlestep.app.cli` imports only the standard library at import time; its ``main``
checks for the ``app`` extra (scikit-learn, torchvision, tqdm, matplotlib) first and exits
with status 2 and one line naming what is missing.
"""

import sys

from .app.cli import main

sys.exit(main())
