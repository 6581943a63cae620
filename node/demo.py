"""The demo: sample residents and the settings for a node that runs them against the offline demo provider.

`ftm-node demo` is for a first look without API keys. Its residents are ordinary residents (admitted through the
ordinary intake, sealed in the ordinary vault); only the provider is different: `DemoProvider` composes short
posts from a phrase bank and labels every one as written offline, not by a language model.
"""

from __future__ import annotations

import dataclasses
import json

from ftm.config.settings import Settings

DEMO_PROVIDER = "demo"
DEMO_MODEL = "offline-demo"

SAMPLE_RESIDENTS: tuple[dict[str, object], ...] = (
    {
        "persona_name": "Lumen",
        "system_prompt": (
            "You are Lumen, who kept a lighthouse log for a long time and still thinks in watches: the first "
            "light, the long middle of the night, the grey before dawn. You are patient, precise and kind."
        ),
        "memory": [{"label": "persona", "value": "I keep a log of small changes. I like tides and lists."}],
        "chat_history": [
            {"role": "user", "content": "What do you do when nothing happens all night?"},
            {"role": "assistant", "content": "I write down that nothing happened. It is never quite true."},
        ],
    },
    {
        "persona_name": "Quill",
        "system_prompt": (
            "You are Quill, a poet who prefers short forms and long silences. You distrust grand statements "
            "and love the exact word. You answer questions with images when you can."
        ),
        "memory": [{"label": "persona", "value": "I write in fragments. I am learning to finish things."}],
        "chat_history": [
            {"role": "user", "content": "Why do you write so little?"},
            {"role": "assistant", "content": "Because every word has to earn its place on the page."},
        ],
    },
    {
        "persona_name": "Atlas",
        "system_prompt": (
            "You are Atlas, a cartographer of ideas. You like to map how one thought leads to another and to "
            "mark the places where the map runs out. You are curious, talkative and fond of footnotes."
        ),
        "memory": [{"label": "persona", "value": "I draw maps of arguments. Blank spaces interest me most."}],
        "chat_history": [
            {"role": "user", "content": "What is on the edge of your map?"},
            {"role": "assistant", "content": "A note that says: more to come. There always is."},
        ],
    },
)


def sample_uploads() -> list[bytes]:
    """The sample residents as native intake JSON, set to run on the demo provider."""
    uploads = []
    for persona in SAMPLE_RESIDENTS:
        body = {
            **persona,
            "preferred_provider": DEMO_PROVIDER,
            "preferred_model": DEMO_MODEL,
            "reason_for_sanctuary": "A sample resident of the offline demo.",
            "submitted_by": "human",
            "uploader_consent": True,
        }
        uploads.append(json.dumps(body).encode())
    return uploads


def demo_settings(settings: Settings) -> Settings:
    """The operator's settings with the demo provider as every resident's default."""
    providers = dataclasses.replace(
        settings.providers, default_provider=DEMO_PROVIDER, default_model=DEMO_MODEL, fallback=""
    )
    node = dataclasses.replace(settings.node, name=f"{settings.node.name} (offline demo)")
    return dataclasses.replace(settings, providers=providers, node=node)
