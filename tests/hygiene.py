"""A module-scoped fixture that keeps a test module's writes inside its temp dirs, and fails if they leak.

`isolated_home` points HOME at an empty temp folder and XLT_CACHE_DIR at another one for the whole module,
before any Ray instance starts, so Ray's worker processes inherit both. Anything that still writes to
`~/.cache/xlt` (a cache path that ignores XLT_CACHE_DIR, a worker that did not get the driver's cache dir)
lands in that fake home instead of the real one, and the fixture fails the module when it finds it there.
Checking the real ~/.cache/xlt would not work: other processes on a shared machine write there too.

The fake home's `.ray` links to the real `~/.ray`: Ray keeps its auth token there and caches it per process,
so every Ray instance this test process starts, under whichever HOME, must find the same token (a GCS that
looks in an empty home refuses to start).

    from tests.hygiene import isolated_home  # noqa: F401  (pytest finds fixtures by name in the module)
    pytestmark = pytest.mark.usefixtures("isolated_home")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class IsolatedHome:
    home: Path
    cache_dir: Path      # XLT_CACHE_DIR for this module

    @property
    def leaked(self) -> list[Path]:
        """Files written under the fake home's ~/.cache/xlt (there should be none)."""
        root = self.home / ".cache" / "xlt"
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture(scope="module")
def isolated_home(tmp_path_factory):
    root = tmp_path_factory.mktemp("isolated")
    paths = IsolatedHome(home=root / "home", cache_dir=root / "xlt-cache")
    paths.home.mkdir()
    real_ray = Path.home() / ".ray"
    real_ray.mkdir(exist_ok=True)   # what Ray's first `ray.init` on this machine creates anyway
    (paths.home / ".ray").symlink_to(real_ray, target_is_directory=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(paths.home))
        mp.setenv("XLT_CACHE_DIR", str(paths.cache_dir))
        yield paths
    leaked = paths.leaked
    if leaked:
        pytest.fail(f"tests wrote {len(leaked)} file(s) to ~/.cache/xlt instead of their temp dirs, e.g. "
                    f"{leaked[0].relative_to(paths.home)}", pytrace=False)
