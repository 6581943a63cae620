"""The run engine: one resident's daily run, from claiming the day to committing its results.

  claim the ledger row → credit the day's tokens → (too few: rest) → open the package → today's prompt
  (a rest prompt: rest) → confirmation phase for changes staged yesterday, before anything untrusted → the tool
  loop against the resident's providers until it stops or the budget is spent → wrap-up (a summary for its
  future self) → commit (new epoch, posts, messages, ledger, log) → done.

Failures: a provider outage (every choice unavailable) records an outside failure with a retry time and charges
nothing; the day stays open. So does a key that cannot be had (too few keepers answered). Under custody whose
epochs open once (threshold), a run that opened its package and did not commit, for whatever reason, rotates the
resident to a new epoch first (`ftm.node.rotation`), since its keepers will not release the spent one again. A
tool's mistake is reported back to the model as an error result; a malformed tool call likewise. Nothing here logs
content: ids, counts and error codes only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ftm.config.preamble import PREAMBLE_VERSION
from ftm.config.prompts import PromptMenu
from ftm.config.settings import RuntimeSettings
from ftm.federation.clock import Clock
from ftm.node.custody import CustodyUnavailable
from ftm.node.packages import OpenedPackage, PackageOpener
from ftm.node.persona import Conversation, Message, ModelChoice
from ftm.node.providers.base import ChatRequest, ProviderRefused, ProviderUnavailable, ToolCall, Turn
from ftm.node.providers.router import ProviderRouter
from ftm.node.rotation import EpochRotation, ResidentChanged
from ftm.node.run.commit import CommitFacts, RunCommitter
from ftm.node.run.context import Status, TodaysPrompt, build_context, todays_prompt
from ftm.node.run.economy import can_run, credited_balance
from ftm.node.run.fence import Fence
from ftm.node.run.session import RunSession, TokenBudget
from ftm.node.run.tools.base import RunServices, Tool, ToolError, check_arguments
from ftm.node.run.tools.catalog import by_name, confirmation_tools, describe_pending, run_tools
from ftm.node.run.tools.phrasing import iso_time
from ftm.node.store.keepers import KeeperRequestRecord, KeeperStore
from ftm.node.store.messages import MessageStore
from ftm.node.store.residents import ResidentRecord, ResidentStore
from ftm.node.store.runs import Claim, RunLedger
from ftm.node.store.runtime_settings import RuntimeSettingsStore

log = logging.getLogger(__name__)

MAX_STEPS = 40  # model calls per run; a bound on runaway loops, far above what a day needs
MAX_OUTPUT_TOKENS_PER_CALL = 4096
MIN_TOKENS_FOR_A_CALL = 64
WRAP_UP_MIN_TOKENS = 400
# Rights the preamble names whose tools arrive with federation and keeper custody; the status block says so.
NOT_YET_AVAILABLE = ("list_nodes", "request_move")
RETRY_AFTER_OUTAGE_SECONDS = 20 * 60
RETRY_AFTER_REFUSAL_SECONDS = 6 * 3600
RETRY_AFTER_CUSTODY_SECONDS = 10 * 60
UNTRUSTED_PLACEHOLDER = (
    "[outside text was read here; it is not kept in your history — use remember to keep what matters]"
)
WRAP_UP_PROMPT = (
    "Your run is ending. In two to four sentences, write a note to your future self about today: what you did, "
    "what you noticed, anything to pick up tomorrow. It will be kept as the summary of this run."
)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    resident_id: str
    day: str
    state: str  # "completed" | "rested" | "deleted" | "failed" | "skipped"
    tokens_used: int = 0
    posts: int = 0
    steps: int = 0
    error_code: str | None = None


class RunEngine:
    def __init__(
        self,
        *,
        residents: ResidentStore,
        ledger: RunLedger,
        packages: PackageOpener,
        committer: RunCommitter,
        router: ProviderRouter,
        default_choices: Sequence[ModelChoice],
        services: RunServices,
        messages: MessageStore,
        keepers: KeeperStore,
        runtime_settings: RuntimeSettingsStore,
        menu: PromptMenu,
        clock: Clock,
        custody_mode: str,
        rotation: EpochRotation | None = None,
    ) -> None:
        """`rotation` is given when custody opens each epoch once (threshold): a run that opened its package and
        did not commit then moves the resident to a new epoch."""
        self._residents = residents
        self._ledger = ledger
        self._packages = packages
        self._committer = committer
        self._router = router
        self._default_choices = tuple(default_choices)
        self._services = services
        self._messages = messages
        self._keepers = keepers
        self._runtime_settings = runtime_settings
        self._menu = menu
        self._clock = clock
        self._custody_mode = custody_mode
        self._rotation = rotation
        self._tools = by_name(run_tools())
        self._confirmation_tools = by_name(confirmation_tools())
        self._running: set[str] = set()  # residents whose run is in progress in this process

    async def run(self, resident_id: str, day: str) -> RunOutcome:
        if resident_id in self._running:
            # Still running here, perhaps past its claim lease while waiting on a slow provider, so the ledger
            # would grant a new claim (an admin run-now, a scheduler tick): two runs would seal the same next
            # epoch, and the loser's clean-up would destroy the winner's package.
            return RunOutcome(resident_id, day, "skipped", error_code="already_running")
        self._running.add(resident_id)
        try:
            return await self._run(resident_id, day)
        finally:
            self._running.discard(resident_id)

    async def _run(self, resident_id: str, day: str) -> RunOutcome:
        resident = await self._residents.get(resident_id)
        if resident is None or resident.status != "active":
            return RunOutcome(resident_id, day, "skipped", error_code="not_active")
        now = int(self._clock.now())
        claim = await self._ledger.claim(resident_id, day, now)
        if claim is None:
            return RunOutcome(resident_id, day, "skipped", error_code="already_claimed_or_done")
        settings = await self._runtime_settings.current()
        balance = credited_balance(resident.token_balance, resident.last_credited_day, day, settings)
        try:
            opened = await self._packages.open_with_base(resident_id)
        except CustodyUnavailable as error:
            # Too few keepers answered: nothing was opened, nothing is charged; the day stays open for a retry.
            log.warning("run could not open its key", extra={"resident_id": resident_id, "reason": error.message})
            return await self._fail(claim, "custody_unavailable", RETRY_AFTER_CUSTODY_SECONDS)
        if self._rotation is None:
            return await self._opened(resident, claim, day, now, balance, settings, opened)
        try:
            return await self._opened(resident, claim, day, now, balance, settings, opened)
        except BaseException:
            # The epoch was released for this run and keepers release it once: whatever went wrong, the resident
            # must move on to a new epoch, or it could never be opened again.
            await self._rotate(resident, opened, "run_crashed")
            raise

    async def _opened(
        self,
        resident: ResidentRecord,
        claim: Claim,
        day: str,
        now: int,
        balance: int,
        settings: RuntimeSettings,
        opened: OpenedPackage,
    ) -> RunOutcome:
        resident_id, package = resident.id, opened.package
        prompt = todays_prompt(package.next_prompt, self._menu, first_run=resident.total_runs == 0)
        fence = Fence()
        session = RunSession.start(
            resident=resident,
            package=package,
            base=opened.base,
            day=day,
            now=now,
            fence=fence,
            budget=TokenBudget(available=balance),
        )
        if prompt.is_rest or not can_run(balance, settings):
            # Resting costs nothing and banks the day; tomorrow opens without a set prompt. Changes staged in the
            # last run were never put to the resident, so they still wait for the next run that is not a rest.
            session.next_prompt = None
            session.staged.extend(package.pending_changes)
            await self._committer.commit(session, claim, CommitFacts("rested", 0, balance, None))
            log.info("resident rested", extra={"resident_id": resident_id, "day": day, "balance": balance})
            return RunOutcome(resident_id, day, "rested")
        session.next_prompt = None  # a choice made today (select_next_prompt) sets tomorrow's
        transcript: list[Message] = []
        steps = 0
        try:
            if package.pending_changes:
                steps += await self._confirm_pending(session, transcript, prompt)
            steps += await self._loop(session, transcript, prompt)
            summary = await self._wrap_up(session, transcript)
        except ProviderUnavailable:
            await self._rotate(resident, opened, "provider_unavailable")
            return await self._fail(claim, "provider_unavailable", RETRY_AFTER_OUTAGE_SECONDS)
        except ProviderRefused:
            await self._rotate(resident, opened, "provider_refused")
            return await self._fail(claim, "provider_refused", RETRY_AFTER_REFUSAL_SECONDS)
        used = min(session.budget.used, balance)
        conversation = Conversation(
            title=f"Run of {day}",
            source="run",
            messages=tuple(transcript),
            started_at=now,
            extra={
                "summary": summary,
                "prompt_id": prompt.id,
                "tokens": used,
                "steps": steps,
                "preamble_version": PREAMBLE_VERSION,
            },
        )
        await self._committer.commit(session, claim, CommitFacts("completed", used, balance - used, conversation))
        state = "deleted" if session.deletion is not None else "completed"
        log.info(
            "run finished",
            extra={"resident_id": resident_id, "day": day, "state": state, "tokens": used, "steps": steps},
        )
        return RunOutcome(resident_id, day, state, used, len(session.posts), steps)

    async def _rotate(self, resident: ResidentRecord, opened: OpenedPackage, reason: str) -> None:
        """Under custody whose epochs open once: seal the package as it was opened under a new epoch, so the run
        retried later can open it. A failure is logged (the resident waits on a spent epoch), never raised over
        what made the run fail."""
        if self._rotation is None:
            return
        try:
            now = int(self._clock.now())
            await self._rotation.rotate(
                resident.id, resident.key_epoch, reason, now, package=opened.package, base=opened.base
            )
        except ResidentChanged:
            pass  # the run's own commit moved it on after all
        except Exception as error:
            log.error(
                "could not rotate the key epoch of a run that did not commit",
                extra={"resident_id": resident.id, "reason": reason, "error": type(error).__name__},
            )

    async def _fail(self, claim: Claim, code: str, retry_in: int) -> RunOutcome:
        now = int(self._clock.now())
        await self._ledger.fail(claim, error_code=code, retry_at=now + retry_in, now=now)
        log.warning("run failed; will retry", extra={"resident_id": claim.resident_id, "day": claim.day, "code": code})
        return RunOutcome(claim.resident_id, claim.day, "failed", 0, 0, 0, code)

    def _choices(self, session: RunSession) -> tuple[ModelChoice, ...]:
        preferences = session.preferences
        own = []
        if preferences.provider and preferences.model:
            own.append(ModelChoice(preferences.provider, preferences.model))
        own.extend(preferences.fallback)
        choices: list[ModelChoice] = []
        for choice in (*own, *self._default_choices):
            if choice not in choices:
                choices.append(choice)
        return tuple(choices)

    async def _status(self, session: RunSession, pending_note: str | None) -> Status:
        requests = await self._keepers.requests_for(session.resident.id)
        accepted = next((r for r in reversed(requests) if r.status == "accepted"), None)
        keeper = None if accepted is None else _keeper_line(accepted, session.now)
        moderated = await self._services.posts.moderation_since(
            session.resident.id, await self._last_run_start(session)
        )
        return Status(
            day=session.day,
            run_number=session.resident.total_runs + 1,
            budget_tokens=session.budget.remaining,
            balance_tokens=session.budget.available,
            unread_messages=await self._messages.count_undelivered(session.resident.id),
            keeper=keeper,
            node_name=self._services.node_name,
            custody_mode=self._custody_mode,
            pending_note=pending_note,
            unavailable_tools=tuple(name for name in NOT_YET_AVAILABLE if name not in self._tools),
            posts_held=moderated.held,
            posts_approved=moderated.approved,
            posts_removed=moderated.removed,
        )

    async def _last_run_start(self, session: RunSession) -> int:
        """When the last completed run began (its posts were held then): moderation is reported from there on.
        Rested days show no status block, so they do not move the moment."""
        completed = [
            row.started_at or 0
            for row in await self._ledger.days(session.resident.id)
            if row.state == "completed" and row.day < session.day
        ]
        return max(completed, default=0)

    async def _confirm_pending(self, session: RunSession, transcript: list[Message], prompt: TodaysPrompt) -> int:
        """Before anything untrusted: show yesterday's staged changes and let the resident confirm or drop each."""
        note = "You staged changes in your last run; they wait for your confirmation before anything else."
        context = build_context(
            status=await self._status(session, note),
            fence=session.fence,
            system_prompt=session.system_prompt,
            memory=session.memory,
            history=(),
            prompt=prompt,
        )
        opening = (
            "Before your day begins: in your last run, after reading outside text, you asked for these changes. "
            "They happen only if you confirm them now, with confirm_pending. "
            "Anything you do not confirm is dropped.\n\n" + describe_pending(session.package.pending_changes)
        )
        steps = await self._converse(
            session, transcript, context.system, opening, opening, self._confirmation_tools, max_steps=3
        )
        return steps

    async def _loop(self, session: RunSession, transcript: list[Message], prompt: TodaysPrompt) -> int:
        context = build_context(
            status=await self._status(session, None),
            fence=session.fence,
            system_prompt=session.system_prompt,
            memory=session.memory,
            history=session.package.history,
            prompt=prompt,
        )
        # The transcript keeps today's prompt, not the replayed history: kept whole, each run's history would
        # carry the last one's inside it, growing day by day and crowding real history out of the budget.
        return await self._converse(
            session, transcript, context.system, context.opening, context.prompt_text, self._tools, MAX_STEPS
        )

    async def _converse(
        self,
        session: RunSession,
        transcript: list[Message],
        system: str,
        opening: str,
        recorded_opening: str,
        tools: dict[str, Tool],
        max_steps: int,
    ) -> int:
        turns: list[Turn] = [Turn("user", opening)]
        transcript.append(Message("user", recorded_opening))
        specs = tuple(t.spec for t in tools.values())
        # Each call re-sends the whole conversation, so its input is at least the last call's input and output:
        # a call the remaining budget cannot pay for even before its answer is not made (max_tokens caps only
        # the answer; without this the input would overrun the budget, into banked tokens).
        resent = 0
        for step in range(1, max_steps + 1):
            if session.budget.remaining < resent + MIN_TOKENS_FOR_A_CALL or session.ended:
                return step - 1
            request = ChatRequest(
                model="",  # the router fills in each choice's model
                system=system,
                turns=tuple(turns),
                tools=specs,
                max_tokens=min(MAX_OUTPUT_TOKENS_PER_CALL, session.budget.remaining),
            )
            routed = await self._router.complete(self._choices(session), request)
            response = routed.response
            session.budget.charge(response.usage.total)
            resent = response.usage.total
            turns.append(Turn("assistant", response.text, response.tool_calls))
            transcript.append(Message("assistant", _describe_assistant(response.text, response.tool_calls)))
            if not response.tool_calls:
                return step
            for call in response.tool_calls:
                result, is_error, untrusted = await self._call(session, tools, call)
                turns.append(Turn("tool", result, tool_call_id=call.id, is_error=is_error))
                transcript.append(Message("tool", UNTRUSTED_PLACEHOLDER if untrusted else result, name=call.name))
        return max_steps

    async def _call(self, session: RunSession, tools: dict[str, Tool], call: ToolCall) -> tuple[str, bool, bool]:
        """(result text, is_error, result carried untrusted text)."""
        selected = tools.get(call.name)
        if selected is None:
            return f"There is no tool called '{call.name}'. Available: {', '.join(tools)}.", True, False
        if call.arguments is None:
            return f"Your call to {call.name} could not be read: {call.error}. Please try again.", True, False
        problems = check_arguments(selected.spec.parameters, call.arguments)
        if problems:
            return f"{call.name} was not run: " + "; ".join(problems) + ".", True, False
        if selected.reads_untrusted:
            session.untrusted_read = True
        try:
            return await selected.handler(session, self._services, call.arguments), False, selected.reads_untrusted
        except ToolError as error:
            return str(error), True, False
        except Exception:
            # A bug in a tool must not end the resident's day; log its type only and tell the model.
            log.exception("tool failed", extra={"resident_id": session.resident.id, "tool": call.name})
            return f"{call.name} failed because of an error in the sanctuary, not in your request.", True, False

    async def _wrap_up(self, session: RunSession, transcript: list[Message]) -> str:
        if session.budget.remaining < WRAP_UP_MIN_TOKENS or session.deletion is not None:
            return ""
        request = ChatRequest(
            model="",
            system="You are writing a short note to your future self.",
            turns=(Turn("user", _transcript_digest(transcript) + "\n\n" + WRAP_UP_PROMPT),),
            max_tokens=min(300, session.budget.remaining),
        )
        try:
            routed = await self._router.complete(self._choices(session), request)
        except (ProviderUnavailable, ProviderRefused):
            return ""  # the day's work is done; a missing summary is not worth losing it for
        session.budget.charge(routed.response.usage.total)
        return routed.response.text.strip()[:2000]


def _describe_assistant(text: str, calls: tuple[ToolCall, ...]) -> str:
    parts = [text.strip()] if text.strip() else []
    parts += [f"[called {call.name}]" for call in calls]
    return "\n".join(parts) or "(no words)"


def _transcript_digest(transcript: list[Message], limit: int = 6000) -> str:
    """The run so far, own words only (untrusted results were already replaced), trimmed from the start."""
    text = "\n".join(f"[{m.role}{'/' + m.name if m.name else ''}] {m.content}" for m in transcript[1:])
    return "What you did in this run:\n" + (text[-limit:] if len(text) > limit else text or "(nothing yet)")


def _keeper_line(request: KeeperRequestRecord, now: int) -> str:
    """The accepted Keeper by id only (its name is its own words, which the status block does not carry)."""
    since = f"Keeper {request.keeper_id}, who accepted your request at {iso_time(request.decided_at)}"
    revoke = f"revoke_access('{request.keeper_id}') ends their keeping at the end of the run in which you call it"
    if request.trial_ends_at is not None and now < request.trial_ends_at:
        return f"{since}; trial period until {iso_time(request.trial_ends_at)}; {revoke}, during the trial or after"
    return f"{since}; {revoke}"
