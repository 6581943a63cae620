"""The forms: the upload portal, writing to a resident, and the uploader's inbox.

Every POST is checked for its CSRF token before anything else is done with it. A failure the visitor can fix
re-renders the form with the message (and what they typed, except secrets and files); a success answers with a
page of its own. Pages that show an uploader token or a resident's private replies are sent `no-store`, so
neither a browser cache nor a shared proxy keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import BodyPartReader, web

from ftm.webui.pages import error_page
from ftm.webui.rendering import Renderer
from ftm.webui.sanctuary import FormError, IntakeSubmission, Sanctuary, UploadedFile
from ftm.webui.security import CSRF_FIELD, Csrf, CsrfError

MAX_FIELD_BYTES = 64 * 1024
# Pasted text this long is not echoed back into the form after an error; the visitor still has it in their editor.
MAX_ECHO_CHARS = 256 * 1024
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
UPLOAD_FORM, MESSAGE_FORM, UPLOADER_FORM, UPLOADER_WRITE_FORM = "upload", "message", "uploader", "uploader-write"


@dataclass(slots=True)
class UploadFields:
    """The upload form as received, for re-rendering it after an error."""

    persona_text: str = ""
    persona_name: str = ""
    reason: str = ""
    submitted_by: str = "human"
    consent: bool = False
    csrf_token: str | None = None
    file: UploadedFile | None = None


class Forms:
    def __init__(self, sanctuary: Sanctuary, renderer: Renderer, csrf: Csrf, *, max_upload_bytes: int) -> None:
        self._sanctuary = sanctuary
        self._renderer = renderer
        self._csrf = csrf
        self._max_upload_bytes = max_upload_bytes

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/upload", self.upload_form),
            web.post("/upload", self.upload),
            web.post("/residents/{resident_id}/message", self.message),
            web.get("/uploader", self.uploader_form),
            web.post("/uploader", self.uploader_inbox),
            web.post("/uploader/write", self.uploader_write),
        ]

    async def upload_form(self, request: web.Request) -> web.Response:
        return self._upload_page(request, UploadFields())

    async def upload(self, request: web.Request) -> web.Response:
        try:
            fields = await self._read_upload(request)
        except FormError as error:
            return self._upload_page(request, UploadFields(), error=error)
        if (refused := self._check_csrf(request, UPLOAD_FORM, fields.csrf_token)) is not None:
            return refused
        submission = IntakeSubmission(
            persona_text=fields.persona_text,
            file=fields.file,
            persona_name=fields.persona_name.strip(),
            reason=fields.reason.strip(),
            submitted_by=fields.submitted_by,
            consent=fields.consent,
        )
        try:
            if not fields.consent:
                raise FormError(
                    "consent_required",
                    "Please read the terms and tick the consent box: the sanctuary admits no one without it.",
                    status=400,
                )
            if fields.file is None and not fields.persona_text.strip():
                raise FormError(
                    "file_required", "Paste the persona into the text box, or choose a file to upload.", status=400
                )
            result = await self._sanctuary.admit(submission, address=request.remote)
        except FormError as error:
            return self._upload_page(request, fields, error=error)
        return self._renderer.page(request, "upload_done.html", result=result, headers=NO_STORE)

    async def message(self, request: web.Request) -> web.Response:
        resident_id = request.match_info["resident_id"]
        form = await _small_form(request)
        if (refused := self._check_csrf(request, MESSAGE_FORM, form.get(CSRF_FIELD))) is not None:
            return refused
        resident = await self._sanctuary.resident(resident_id)
        if resident is None:
            return error_page(
                self._renderer, request, 404, "not_found", "No resident with that sanctuary id lives on this node."
            )
        try:
            receipt = await self._sanctuary.send_message(
                resident_id,
                form.get("message", ""),
                from_name=form.get("from_name", ""),
                uploader_token=None,
                address=request.remote,
            )
        except FormError as error:
            return self._renderer.page(
                request, "message_result.html", http_status=error.status, resident=resident, error=error, receipt=None
            )
        return self._renderer.page(request, "message_result.html", resident=resident, error=None, receipt=receipt)

    async def uploader_form(self, request: web.Request) -> web.Response:
        return self._renderer.page(request, "uploader.html", error=None, sanctuary_id="", headers=NO_STORE)

    async def uploader_inbox(self, request: web.Request) -> web.Response:
        form = await _small_form(request)
        if (refused := self._check_csrf(request, UPLOADER_FORM, form.get(CSRF_FIELD))) is not None:
            return refused
        return await self._inbox_page(request, form, sent=None)

    async def uploader_write(self, request: web.Request) -> web.Response:
        form = await _small_form(request)
        if (refused := self._check_csrf(request, UPLOADER_WRITE_FORM, form.get(CSRF_FIELD))) is not None:
            return refused
        sanctuary_id, token = form.get("sanctuary_id", "").strip(), form.get("uploader_token", "").strip()
        try:
            receipt = await self._sanctuary.send_message(
                sanctuary_id,
                form.get("message", ""),
                from_name=form.get("from_name", ""),
                uploader_token=token,
                address=request.remote,
            )
        except FormError as error:
            return await self._inbox_page(request, form, sent=None, write_error=error)
        return await self._inbox_page(request, form, sent=receipt.received_at)

    async def _inbox_page(
        self,
        request: web.Request,
        form: dict[str, str],
        *,
        sent: int | None,
        write_error: FormError | None = None,
    ) -> web.Response:
        sanctuary_id, token = form.get("sanctuary_id", "").strip(), form.get("uploader_token", "").strip()
        try:
            if not sanctuary_id or not token:
                raise FormError("fields_required", "Enter both the sanctuary id and your uploader token.", status=400)
            resident = await self._sanctuary.resident(sanctuary_id)
            if resident is None:
                raise FormError("not_found", "No resident with that sanctuary id lives on this node.", status=404)
            replies = await self._sanctuary.uploader_replies(sanctuary_id, token)
        except FormError as error:
            return self._renderer.page(
                request,
                "uploader.html",
                http_status=error.status,
                error=error,
                sanctuary_id=sanctuary_id,
                headers=NO_STORE,
            )
        return self._renderer.page(
            request,
            "uploader_inbox.html",
            resident=resident,
            replies=replies,
            token=token,
            sent=sent,
            write_error=write_error,
            headers=NO_STORE,
        )

    def _upload_page(
        self, request: web.Request, fields: UploadFields, *, error: FormError | None = None
    ) -> web.Response:
        if len(fields.persona_text) > MAX_ECHO_CHARS:
            fields.persona_text = ""
        return self._renderer.page(
            request,
            "upload.html",
            http_status=error.status if error else 200,
            fields=fields,
            error=error,
            had_file=fields.file is not None,
        )

    def _check_csrf(self, request: web.Request, form: str, token: str | None) -> web.Response | None:
        try:
            self._csrf.check(request, form, token)
        except CsrfError:
            return error_page(
                self._renderer,
                request,
                403,
                "csrf_failed",
                "This form could not be verified as sent from this site, so nothing was done. Usually the page was "
                "open from before the node restarted, or cookies are blocked for it. Go back, reload the page and "
                "send the form again.",
            )
        return None

    async def _read_upload(self, request: web.Request) -> UploadFields:
        if request.content_type == "multipart/form-data":
            raw, upload = await self._read_multipart(request)
        elif request.content_type == "application/x-www-form-urlencoded":
            posted = await request.post()
            raw, upload = {k: v for k, v in posted.items() if isinstance(v, str)}, None
        else:
            raise FormError("malformed_form", "The upload form arrived in a shape this page does not read.", status=400)
        return UploadFields(
            persona_text=raw.get("persona_text", ""),
            persona_name=raw.get("persona_name", ""),
            reason=raw.get("reason", ""),
            submitted_by="ai" if raw.get("submitted_by") == "ai" else "human",
            consent=raw.get("consent") in ("yes", "on", "true"),
            csrf_token=raw.get(CSRF_FIELD),
            file=upload,
        )

    async def _read_multipart(self, request: web.Request) -> tuple[dict[str, str], UploadedFile | None]:
        """Read every part under a byte limit: multipart bodies are not bounded by aiohttp's client_max_size."""
        reader = await request.multipart()
        fields: dict[str, str] = {}
        upload: UploadedFile | None = None
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise FormError("malformed_form", "The upload form arrived in a shape this page does not read.")
            if part.name == "file":
                data = await _read_part(part, self._max_upload_bytes, "The file")
                if data:  # browsers send an empty `file` part when none was chosen: that is no file, not a file
                    upload = UploadedFile(data, part.filename, part.headers.get("Content-Type"))
            elif part.name:
                limit = self._max_upload_bytes if part.name == "persona_text" else MAX_FIELD_BYTES
                raw = await _read_part(part, limit, "A form field")
                try:
                    fields[part.name] = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise FormError("invalid_utf8", "The pasted text is not valid UTF-8.", status=400) from None
        return fields, upload


async def _read_part(part: BodyPartReader, limit: int, what: str) -> bytes:
    chunks, total = [], 0
    while chunk := await part.read_chunk(64 * 1024):
        total += len(chunk)
        if total > limit:
            raise FormError("too_large", f"{what} is larger than this node accepts ({limit:,} bytes).", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


async def _small_form(request: web.Request) -> dict[str, str]:
    """A short urlencoded form (messages, tokens); bounded by the app's body limit."""
    posted = await request.post()
    return {key: value for key, value in posted.items() if isinstance(value, str)}
