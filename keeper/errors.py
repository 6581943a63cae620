"""The one error a keeper operation refuses with: a stable code, an HTTP status and a message that names ids and
numbers only. The server turns it into `{"error": {"code", "message"}}` with the status (docs/keeper.md lists
the codes); a refusal under the release policy carries the policy's `Code` with status 403.
"""

from __future__ import annotations


class KeeperError(Exception):
    """A request the keeper refuses; `code` is stable, `status` the HTTP status to answer with."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
