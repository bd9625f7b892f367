"""Spec hot reload: notice when the spec files change, reload them with the normal loader.

Polling the files' (path, mtime, size) each cycle costs a few `stat` calls and needs no
inotify, works on network and container volumes, and catches added and deleted files too.
A Kubernetes ConfigMap update swaps a symlink; `stat` follows it, so that is seen as well.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from engine.spec.loader import LoadResult, load_specs, spec_files

Signature = tuple[tuple[str, int, int], ...]


class SpecWatcher:
    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = [Path(p) for p in paths]
        self._seen: Signature | None = None

    def signature(self) -> Signature:
        files, _ = spec_files(self.paths)
        found = []
        for path in files:
            try:
                st = os.stat(path)
            except OSError:
                continue
            found.append((str(path), st.st_mtime_ns, st.st_size))
        return tuple(found)

    def changed(self) -> bool:
        """True when the files differ from what the last `load()` saw."""
        return self.signature() != self._seen

    def load(self) -> LoadResult:
        """Load the specs; remember what was loaded, valid or not, so an invalid set is
        reported once per change rather than every cycle."""
        self._seen = self.signature()
        return load_specs(self.paths)
