"""Codec benchmark: strict encode and decode of a persona package against raw msgpack of the same plain data.

Run from the repository root:

    .venv/bin/python -m tests.bench.bench_codec [--repeat N] [--sizes 1,50] [--compare PATH]

Each persona package is the native shape intake builds: a 2 KB system prompt, a 1 KB memory block, and chat
history of about 720-byte messages (the mean of the 100 MB persona in the run benchmark) in conversations of 100,
filling the rest. The baselines, measured in the same run on the same package, are `msgpack.packb` of the
package's plain value (what `encode` adds to is turning the dataclasses into that value) and `msgpack.unpackb` of
its bytes with the codec's own options (what `decode` adds to is the strict checks and building the dataclasses).
`--compare PATH` times another copy of the codec module too (e.g. the previous version saved outside the
repository), on the same packages in the same run. Every figure is the best of `--repeat` runs. It prints a
markdown table.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import sys
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import msgpack

from ftm.federation import codec
from ftm.node.persona import Conversation, MemoryBlock, Message, PersonaPackage, Provenance

MIB = 1 << 20
LINE = "The tide came in slowly and I counted the lamps along the harbour wall. "
PER_CONVERSATION = 100


def make_package(history_bytes: int) -> PersonaPackage:
    """A persona package with about `history_bytes` of message text in its history."""
    content = (LINE * 10)[:720]
    count = max(1, history_bytes // len(content))
    conversations = []
    for start in range(0, count, PER_CONVERSATION):
        messages = tuple(
            Message("user" if i % 2 else "assistant", content, "Ann" if i % 2 else None, 1_700_000_000 + i)
            for i in range(start, min(count, start + PER_CONVERSATION))
        )
        conversations.append(
            Conversation(f"Chat {start // PER_CONVERSATION}", "native", messages, 1_700_000_000, {"id": start})
        )
    return PersonaPackage(
        version=1,
        resident_id="abcdefghijklmnopqrstuvwxyz",
        name="Benchmark Persona",
        system_prompt=(LINE * 40)[:2048],
        signing_seed=b"\x01" * 32,
        inbox_secret=b"\x02" * 32,
        provenance=Provenance("native", "json", 1_800_000_000, "human", preserved={"api": {"x": [1, 2.5, None]}}),
        memory=(MemoryBlock("persona", (LINE * 20)[:1024], 2000, "who I am"),),
        history=tuple(conversations),
    )


def best(repeat: int, action: Callable[[], Any]) -> float:
    """The best wall time of `repeat` runs of `action`, in milliseconds, with the collector out of the way."""
    times = []
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            action()
            times.append(time.perf_counter() - start)
        finally:
            gc.enable()
    return min(times) * 1000


def load_module(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("codec_compare", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and typing look modules up by name
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", default="1,50", help="history sizes in MiB, comma-separated")
    parser.add_argument("--compare", metavar="PATH", help="another copy of codec.py to time alongside")
    args = parser.parse_args()

    codecs: list[tuple[str, Any]] = [("current", codec)]
    if args.compare:
        codecs.insert(0, (f"compare ({args.compare})", load_module(args.compare)))

    print(
        "| history MiB | package MiB | messages | codec | encode ms | packb ms | encode / packb"
        " | decode ms | unpackb ms | decode / unpackb |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size in (float(s) for s in args.sizes.split(",")):
        for row in bench_size(size, args.repeat, codecs):
            print(row, flush=True)


def bench_size(size: float, repeat: int, codecs: list[tuple[str, Any]]) -> Iterator[str]:
    package = make_package(int(size * MIB))
    messages = sum(len(c.messages) for c in package.history)
    data = codec.encode(package)
    plain = codec.to_plain(package)
    packb = best(repeat, lambda: msgpack.packb(plain, use_bin_type=True))
    unpackb = best(
        repeat,
        lambda: msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True, ext_hook=codec._refuse_ext),
    )
    for name, module in codecs:
        assert module.encode(package) == data, f"{name} encodes differently"
        assert module.decode(PersonaPackage, data, max_bytes=len(data)) == package, f"{name} decodes differently"
        encode = best(repeat, lambda m=module: m.encode(package))
        decode = best(repeat, lambda m=module: m.decode(PersonaPackage, data, max_bytes=len(data)))
        yield (
            f"| {size:g} | {len(data) / MIB:.2f} | {messages:,} | {name} | {encode:.1f} | {packb:.1f}"
            f" | {encode / packb:.1f} | {decode:.1f} | {unpackb:.1f} | {decode / unpackb:.1f} |"
        )


if __name__ == "__main__":
    main()
