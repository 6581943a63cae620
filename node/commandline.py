"""What every `ftm-node` command module shares: exit codes (those of every `ftm-*` CLI, `ftm.config.commandline`)
and the shape of the `prepare` step.

`ftm.node.cli` owns the parser and mounts the command modules (`intakecli`, `settingscli`, `keepercli`, …); each
receives `prepare`, which resolves the data directory, loads settings and sets up logging the same way for all.
"""

from __future__ import annotations

from collections.abc import Callable

from ftm.config.commandline import EXIT_CONFIG, EXIT_OK, EXIT_REFUSED
from ftm.config.settings import Settings
from ftm.node.datadir import DataDir

# The exit codes every `ftm-*` CLI shares; for the node, EXIT_REFUSED means it refused the request (a bad upload,
# an unknown resident) and EXIT_CONFIG a usage or configuration error (unknown setting, unreadable key file).
__all__ = ["EXIT_CONFIG", "EXIT_OK", "EXIT_REFUSED", "Prepare"]

Prepare = Callable[..., tuple[DataDir, Settings]]
