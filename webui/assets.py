"""The static files (styles, scripts, fonts), served under a content-versioned path so browsers may keep them.

Every URL is `/static/<version>/<path>`, where the version is a digest of the whole static tree, computed once
at start. A version segment (rather than `?v=` per file) means relative URLs inside the stylesheet, the fonts,
inherit it. A request for the current version is cacheable for a year (`immutable`); an old or unknown version is
still served, but marked `no-cache`, so a page cached across an upgrade does not fetch stale assets for long.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

from aiohttp import web

STATIC_ROOT = Path(__file__).resolve().parent / "static"
LONG_CACHE = "public, max-age=31536000, immutable"
_CONTENT_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".woff2": "font/woff2",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
    ".ico": "image/x-icon",
}


class StaticFiles:
    def __init__(self, root: Path = STATIC_ROOT) -> None:
        self._root = root.resolve()
        self.version = tree_digest(self._root)

    def url(self, path: str) -> str:
        return f"/static/{self.version}/{path}"

    def route(self) -> web.RouteDef:
        return web.get("/static/{version}/{path:.+}", self.serve)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        file = self._resolve(request.match_info["path"])
        if file is None:
            raise web.HTTPNotFound()
        current = request.match_info["version"] == self.version
        return web.FileResponse(
            file,
            headers={
                "Content-Type": _CONTENT_TYPES[file.suffix],
                "Cache-Control": LONG_CACHE if current else "no-cache",
            },
        )

    def _resolve(self, relative: str) -> Path | None:
        """The file under the root that `relative` names, or None: no `..`, no hidden files, known types only."""
        parts = PurePosixPath(relative).parts
        if not parts or any(part in ("", ".", "..") or part.startswith(".") for part in parts):
            return None
        file = self._root.joinpath(*parts).resolve()
        if not file.is_relative_to(self._root) or not file.is_file() or file.suffix not in _CONTENT_TYPES:
            return None
        return file


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(file.relative_to(root).as_posix().encode() + b"\x00")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()[:12]
