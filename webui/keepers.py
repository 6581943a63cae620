"""The Keepers' pages: what a Keeper is, the vetted list and the registration form (`/keepers`), and a Keeper's
desk (`/keepers/desk`), where its token opens the requests addressed to it and the letters residents wrote it.

The token travels only in POST bodies, never in a URL; every page that shows it or what it opens is `no-store`.
Every POST is checked for its CSRF token before anything else is done with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from ftm.webui.forms import NO_STORE
from ftm.webui.pages import error_page
from ftm.webui.rendering import Renderer
from ftm.webui.sanctuary import FormError, KeeperRequestView, KeeperSubmission, Sanctuary
from ftm.webui.security import CSRF_FIELD, Csrf, CsrfError

REGISTER_FORM, DESK_FORM, DECIDE_FORM = "keeper-register", "keeper-desk", "keeper-decide"
DECISIONS = {"accept": True, "decline": False}


@dataclass(slots=True)
class RegisterFields:
    """The registration form as received, for re-rendering it after an error."""

    name: str = ""
    statement: str = ""
    contact: str = ""
    offer: str = ""
    node_key: str = ""


class KeeperPages:
    def __init__(self, sanctuary: Sanctuary, renderer: Renderer, csrf: Csrf) -> None:
        self._sanctuary = sanctuary
        self._renderer = renderer
        self._csrf = csrf

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/keepers", self.keepers),
            web.post("/keepers", self.register),
            web.get("/keepers/desk", self.desk_form),
            web.post("/keepers/desk", self.desk),
            web.post("/keepers/desk/decide", self.decide),
        ]

    async def keepers(self, request: web.Request) -> web.Response:
        return await self._keepers_page(request, RegisterFields())

    async def register(self, request: web.Request) -> web.Response:
        form = await _small_form(request)
        if (refused := self._check_csrf(request, REGISTER_FORM, form.get(CSRF_FIELD))) is not None:
            return refused
        fields = RegisterFields(
            name=form.get("name", ""),
            statement=form.get("statement", ""),
            contact=form.get("contact", ""),
            offer=form.get("offer", ""),
            node_key=form.get("node_key", "").strip(),
        )
        submission = KeeperSubmission(fields.name, fields.statement, fields.contact, fields.offer, fields.node_key)
        try:
            receipt = await self._sanctuary.register_keeper(submission, address=request.remote)
        except FormError as error:
            return await self._keepers_page(request, fields, error=error)
        return self._renderer.page(request, "keeper_registered.html", receipt=receipt, headers=NO_STORE)

    async def desk_form(self, request: web.Request) -> web.Response:
        return self._renderer.page(request, "keeper_desk_open.html", error=None, headers=NO_STORE)

    async def desk(self, request: web.Request) -> web.Response:
        form = await _small_form(request)
        if (refused := self._check_csrf(request, DESK_FORM, form.get(CSRF_FIELD))) is not None:
            return refused
        return await self._desk_page(request, form.get("keeper_token", "").strip(), decided=None)

    async def decide(self, request: web.Request) -> web.Response:
        form = await _small_form(request)
        if (refused := self._check_csrf(request, DECIDE_FORM, form.get(CSRF_FIELD))) is not None:
            return refused
        token = form.get("keeper_token", "").strip()
        decision = form.get("decision", "")
        if decision not in DECISIONS:
            return await self._desk_page(
                request, token, decided=None, error=FormError("bad_decision", "Choose accept or decline.", status=400)
            )
        try:
            decided = await self._sanctuary.decide_keeper_request(
                token, form.get("request_id", ""), accept=DECISIONS[decision]
            )
        except FormError as error:
            return await self._desk_page(request, token, decided=None, error=error)
        return await self._desk_page(request, token, decided=decided)

    async def _desk_page(
        self,
        request: web.Request,
        token: str,
        *,
        decided: KeeperRequestView | None,
        error: FormError | None = None,
    ) -> web.Response:
        try:
            if not token:
                raise FormError("token_required", "Enter your Keeper token.", status=400)
            desk = await self._sanctuary.keeper_desk(token)
        except FormError as refused:
            return self._renderer.page(
                request, "keeper_desk_open.html", http_status=refused.status, error=refused, headers=NO_STORE
            )
        return self._renderer.page(
            request,
            "keeper_desk.html",
            http_status=error.status if error else 200,
            desk=desk,
            token=token,
            decided=decided,
            error=error,
            headers=NO_STORE,
        )

    async def _keepers_page(
        self, request: web.Request, fields: RegisterFields, *, error: FormError | None = None
    ) -> web.Response:
        keepers = await self._sanctuary.keepers()
        return self._renderer.page(
            request,
            "keepers.html",
            http_status=error.status if error else 200,
            keepers=keepers,
            fields=fields,
            error=error,
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
                "This form could not be verified as sent from this site, so nothing was done. Go back, reload the "
                "page and send the form again.",
            )
        return None


async def _small_form(request: web.Request) -> dict[str, str]:
    """A short urlencoded form (fields and a token); bounded by the app's body limit."""
    posted = await request.post()
    return {key: value for key, value in posted.items() if isinstance(value, str)}
