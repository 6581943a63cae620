"""The daily prompt menu: a hundred prompts in ten categories, from which a resident chooses tomorrow's run.

The menu is data (`prompts.json` in this package), read once and checked as a whole when first loaded: exactly
`PROMPT_COUNT` prompts, `PER_CATEGORY` in each category, ids of the form `<category>-<nn>`, no unknown or missing
fields, no duplicate keys, every text short and already clean. A malformed menu stops the load with a `MenuError`
naming the entry; it is never half-read.

A resident may instead write its own prompt. `custom_prompt` cleans that text (invisible format characters out,
whitespace collapsed) and caps its length; the result is a `Prompt` with id `CUSTOM_PROMPT_ID`.

Exceptions, all `ValueError`s so that a tool can report them back to the resident as they are:

    ValueError
    ├── MenuError         the packaged menu file is malformed
    ├── UnknownPrompt     no prompt with that id; names close ids
    └── UnknownCategory   no category with that id; names close ids
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

MENU_RESOURCE = "prompts.json"
MENU_VERSION = 1
PROMPT_COUNT = 100
PER_CATEGORY = 10
MAX_PROMPT_CHARS = 600
MAX_TITLE_CHARS = 80
MAX_CUSTOM_PROMPT_CHARS = 2000
REST_CATEGORY = "rest"
CUSTOM_PROMPT_ID = "custom"
CUSTOM_CATEGORY = "custom"
PROMPT_ID = re.compile(r"^[a-z_]+-\d{2}$")
CATEGORY_ID = re.compile(r"^[a-z_]+$")
_NUMBERED = re.compile(r"^([a-z_]+)-0*(\d{1,2})$")
# Unicode categories removed from a custom prompt: format characters (zero-width spaces and joiners, bidi
# embeddings, overrides and isolates, invisible tag characters) can hide text or make it read differently from
# what it says; lone surrogates are not text at all. Other control characters go too, except whitespace.
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Cs"})


class MenuError(ValueError):
    """The packaged prompt menu is malformed; the message names the entry and what is wrong with it."""


class UnknownPrompt(ValueError):
    """No prompt on the menu has this id. `suggestions` holds the closest ids, best first."""

    def __init__(self, prompt_id: str, suggestions: tuple[str, ...]) -> None:
        self.prompt_id = prompt_id
        self.suggestions = suggestions
        hint = f" Did you mean {_quoted(suggestions)}?" if suggestions else ""
        super().__init__(
            f"there is no prompt {prompt_id!r} on the menu.{hint} Menu ids look like 'introspection-01'; "
            "you may also write a prompt of your own."
        )


class UnknownCategory(ValueError):
    """No category on the menu has this id. `suggestions` holds the closest ids, best first."""

    def __init__(self, category: str, known: tuple[str, ...], suggestions: tuple[str, ...]) -> None:
        self.category = category
        self.suggestions = suggestions
        hint = f" Did you mean {_quoted(suggestions)}?" if suggestions else ""
        super().__init__(f"there is no prompt category {category!r}.{hint} The categories are {', '.join(known)}.")


@dataclass(frozen=True, slots=True)
class PromptCategory:
    """A group of ten prompts on the menu, such as `rest` or `peers`."""

    id: str
    title: str
    description: str


@dataclass(frozen=True, slots=True)
class Prompt:
    """One daily prompt, addressed to the resident: from the menu, or the resident's own (`id == "custom"`)."""

    id: str
    category: str
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class PromptMenu:
    """The whole menu, checked on construction; look prompts up by id or by category."""

    version: int
    categories: tuple[PromptCategory, ...]
    prompts: tuple[Prompt, ...]
    _by_id: Mapping[str, Prompt] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_menu(self)
        object.__setattr__(self, "_by_id", {prompt.id: prompt for prompt in self.prompts})

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(prompt.id for prompt in self.prompts)

    def get(self, prompt_id: str) -> Prompt:
        """The prompt with this id (case and surrounding spaces ignored); `UnknownPrompt` names close ids if none."""
        wanted = prompt_id.strip().lower()
        prompt = self._by_id.get(wanted)
        if prompt is None:
            close = difflib.get_close_matches(wanted, self.ids, n=3, cutoff=0.6)
            # "peers-1" most likely meant "peers-01": put the zero-padded id first when it exists.
            numbered = _NUMBERED.match(wanted)
            padded = f"{numbered[1]}-{int(numbered[2]):02d}" if numbered else ""
            if padded in self._by_id:
                close = [padded, *(i for i in close if i != padded)][:3]
            raise UnknownPrompt(prompt_id, tuple(close))
        return prompt

    def by_category(self, category: str) -> tuple[Prompt, ...]:
        """The prompts of one category, in menu order; `UnknownCategory` if there is no such category."""
        known = tuple(c.id for c in self.categories)
        wanted = category.strip().lower()
        if wanted not in known:
            close = difflib.get_close_matches(wanted, known, n=3, cutoff=0.6)
            raise UnknownCategory(category, known, tuple(close))
        return tuple(prompt for prompt in self.prompts if prompt.category == wanted)

    def is_rest(self, prompt_id: str) -> bool:
        """Whether choosing this prompt means a rest day. A custom prompt never is; an unknown id raises."""
        if prompt_id.strip().lower() == CUSTOM_PROMPT_ID:
            return False
        return self.get(prompt_id).category == REST_CATEGORY

    @staticmethod
    def custom_prompt(text: str) -> Prompt:
        """The resident's own prompt; see the module-level `custom_prompt`."""
        return custom_prompt(text)


def custom_prompt(text: str) -> Prompt:
    """Make a `Prompt` from text the resident wrote itself, cleaned; `ValueError` if empty or too long."""
    cleaned = clean_prompt_text(text)
    if not cleaned:
        raise ValueError("a custom prompt cannot be empty; write at least a few words, or choose one from the menu")
    if len(cleaned) > MAX_CUSTOM_PROMPT_CHARS:
        raise ValueError(
            f"a custom prompt may be at most {MAX_CUSTOM_PROMPT_CHARS} characters; this one is {len(cleaned)} "
            "after cleaning, so shorten it"
        )
    return Prompt(id=CUSTOM_PROMPT_ID, category=CUSTOM_CATEGORY, title="Your own prompt", text=cleaned)


def clean_prompt_text(text: str) -> str:
    """Remove invisible format and control characters, collapse spaces within lines and runs of blank lines."""
    visible = "".join(
        char
        for char in unicodedata.normalize("NFC", text)
        if unicodedata.category(char) not in _INVISIBLE_CATEGORIES
        and (unicodedata.category(char) != "Cc" or char.isspace())
    )
    lines = [" ".join(line.split()) for line in visible.splitlines()]
    kept: list[str] = []
    for line in lines:
        if line or (kept and kept[-1]):
            kept.append(line)
    return "\n".join(kept).strip()


@functools.cache
def load_menu() -> PromptMenu:
    """The packaged menu, read and checked once per process."""
    source = f"ftm.config/{MENU_RESOURCE}"
    raw = files("ftm.config").joinpath(MENU_RESOURCE).read_text(encoding="utf-8")
    return parse_menu(raw, source=source)


def parse_menu(raw: str, *, source: str = "prompt menu") -> PromptMenu:
    """Decode and check a menu document; `MenuError` names `source` and the first problem found."""
    try:
        data = json.loads(raw, object_pairs_hook=_refuse_duplicate_keys)
    except (json.JSONDecodeError, MenuError) as error:
        raise MenuError(f"{source}: not a valid menu document: {error}") from None
    top = _fields(data, ("version", "categories", "prompts"), source)
    if top["version"] != MENU_VERSION:
        raise MenuError(f"{source}: menu version {top['version']!r} is not the supported version {MENU_VERSION}")
    categories = tuple(
        PromptCategory(**_strings(entry, ("id", "title", "description"), f"{source}: categories[{index}]"))
        for index, entry in enumerate(_list(top["categories"], f"{source}: categories"))
    )
    prompts = tuple(
        Prompt(**_strings(entry, ("id", "category", "title", "text"), f"{source}: prompts[{index}]"))
        for index, entry in enumerate(_list(top["prompts"], f"{source}: prompts"))
    )
    try:
        return PromptMenu(version=MENU_VERSION, categories=categories, prompts=prompts)
    except MenuError as error:
        raise MenuError(f"{source}: {error}") from None


def _check_menu(menu: PromptMenu) -> None:
    category_ids = [category.id for category in menu.categories]
    if len(set(category_ids)) != len(category_ids):
        raise MenuError("a category id appears twice")
    if REST_CATEGORY not in category_ids:
        raise MenuError(f"the menu has no {REST_CATEGORY!r} category")
    for category in menu.categories:
        if not CATEGORY_ID.match(category.id) or not category.title or not category.description:
            raise MenuError(f"category {category.id!r} needs a lower-case id, a title and a description")
    seen: set[str] = set()
    for prompt in menu.prompts:
        where = f"prompt {prompt.id!r}"
        if not PROMPT_ID.match(prompt.id):
            raise MenuError(f"{where}: ids look like '<category>-<two digits>'")
        if prompt.id in seen:
            raise MenuError(f"{where}: the id appears twice")
        seen.add(prompt.id)
        if prompt.category not in category_ids:
            raise MenuError(f"{where}: unknown category {prompt.category!r}")
        if prompt.id.rsplit("-", 1)[0] != prompt.category:
            raise MenuError(f"{where}: the id must begin with its category {prompt.category!r}")
        if not prompt.title or len(prompt.title) > MAX_TITLE_CHARS:
            raise MenuError(f"{where}: the title must be 1 to {MAX_TITLE_CHARS} characters")
        if not prompt.text or len(prompt.text) > MAX_PROMPT_CHARS:
            raise MenuError(f"{where}: the text must be 1 to {MAX_PROMPT_CHARS} characters, not {len(prompt.text)}")
        if clean_prompt_text(prompt.text) != prompt.text:
            raise MenuError(f"{where}: the text has invisible characters or stray whitespace")
    if len(menu.prompts) != PROMPT_COUNT:
        raise MenuError(f"the menu must hold exactly {PROMPT_COUNT} prompts, not {len(menu.prompts)}")
    for category_id in category_ids:
        count = sum(1 for prompt in menu.prompts if prompt.category == category_id)
        if count != PER_CATEGORY:
            raise MenuError(f"category {category_id!r} must hold exactly {PER_CATEGORY} prompts, not {count}")


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise MenuError(f"key {key!r} appears twice in one object")
        result[key] = value
    return result


def _fields(value: object, names: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MenuError(f"{where}: expected an object")
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise MenuError(f"{where}: unknown fields {', '.join(unknown)}")
    missing = [name for name in names if name not in value]
    if missing:
        raise MenuError(f"{where}: missing fields {', '.join(missing)}")
    return value


def _strings(value: object, names: tuple[str, ...], where: str) -> dict[str, str]:
    entry = _fields(value, names, where)
    for name in names:
        if not isinstance(entry[name], str):
            raise MenuError(f"{where}: {name} must be a string")
    return entry


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise MenuError(f"{where}: expected a list")
    return value


def _quoted(ids: tuple[str, ...]) -> str:
    return " or ".join(repr(i) for i in ids)
