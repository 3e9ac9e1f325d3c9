"""Keep hypothesis' files out of the working tree: import this before defining strategies.

Hypothesis writes caches (charmaps, the constants its pytest plugin scans at collection) and its example
database under ./.hypothesis. Test modules that use it import this module first, which points hypothesis at a
temp directory removed when the process exits; their settings also pass `database=None`.
"""

import atexit
import shutil
import tempfile

from hypothesis.configuration import set_hypothesis_home_dir

HOME = tempfile.mkdtemp(prefix="xlt-tests-hypothesis-")
set_hypothesis_home_dir(HOME)
atexit.register(shutil.rmtree, HOME, True)
