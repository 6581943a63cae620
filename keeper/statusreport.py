"""What `ftm-keeper status` and `ftm-keeper hosts list` report, as a JSON-ready dict and as text.

Only ids, keys, numbers, states and times: no share, sealed or not, and no replica byte.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

from ftm.federation.eventlog import verify_chain
from ftm.keeper.daemon import Keeper
from ftm.keeper.journal import key_id
from ftm.keeper.replicas import Replicas
from ftm.keeper.server import HEALTH_PATH


async def status_report(keeper: Keeper, *, holdings: bool = True) -> dict[str, Any]:
    hosts = await keeper.store.hosts()
    report: dict[str, Any] = {
        "keeper_id": keeper.keeper_id,
        "keeper_key": keeper.key.public_key.hex(),
        "data_dir": str(keeper.data_dir.root),
        "schema_version": await keeper.db.schema_version(),
        "hosts": [
            {
                "node_id": key_id(host.key),
                "key": host.key.hex(),
                "url": host.url,
                "registration": host.keeper_id,
                "enrolled_at": host.enrolled_at,
                "last_heard": host.last_heard,
            }
            for host in hosts
        ],
    }
    if not holdings:
        return report
    replicas = Replicas(keeper.data_dir.replicas)
    challenges = {(c.host_key, c.resident_id, c.epoch): c for c in await keeper.store.last_challenges()}
    epochs: list[dict[str, Any]] = []
    for record in await keeper.store.all_deposits():
        if record.state == "destroyed":
            held = 0
        elif record.state == "deposited":
            held = await replicas.size(record.host_key, record.resident_id, record.epoch)
        else:
            held = record.length
        last = challenges.get((record.host_key, record.resident_id, record.epoch))
        epochs.append(
            {
                "host": key_id(record.host_key),
                "resident_id": record.resident_id,
                "epoch": record.epoch,
                "state": record.state,
                "bytes": held,
                "length": record.length,
                "x": record.x,
                "threshold": record.threshold,
                "last_challenge": None if last is None else {"at": last.at, "outcome": last.outcome, "leaf": last.leaf},
            }
        )
    chain = await verify_chain(keeper.db, keeper.key.public_key)
    live = [e for e in epochs if e["state"] != "destroyed"]
    report |= {
        "epochs": epochs,
        "residents_held": len({e["resident_id"] for e in live}),
        "bytes_held": sum(e["bytes"] for e in live),
        "event_log_entries": chain.entries,
        "event_log_chain": "valid" if chain.valid else f"BROKEN at entry {chain.first_bad_seq}: {chain.reason}",
        "listen": f"http://{keeper.settings.http.host}:{keeper.settings.http.port}",
    }
    return report


def fetch_health(url: str) -> dict[str, Any] | None:
    """The running keeper's `/healthz` answer at `url`, or None if nothing answers it well (blocking, one second
    at most: for the CLI only). It carries what only the running daemon knows, such as its strangers' counts."""
    try:
        with urllib.request.urlopen(url + HEALTH_PATH, timeout=1) as response:  # noqa: S310 - our own URL
            if response.status != 200:
                return None
            answer = json.loads(response.read(64 * 1024))
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return answer if isinstance(answer, dict) else None


def add_live_facts(report: dict[str, Any]) -> None:
    """Whether the keeper is listening, and its daemon's in-memory counts (`strangers`: requests rate-limited and
    not logged since it started; None when it is not running)."""
    health = fetch_health(str(report["listen"]))
    report["listening"] = health is not None
    strangers = None if health is None else health.get("strangers")
    report["strangers"] = strangers if isinstance(strangers, dict) else None


def _when(timestamp: int | None) -> str:
    if not timestamp:
        return "never"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def print_hosts(report: dict[str, Any]) -> None:
    if not report["hosts"]:
        print("No hosts yet: enrol with `ftm-keeper enrol --node URL --token TOKEN`.")
        return
    for host in report["hosts"]:
        registration = f", registration {host['registration']}" if host["registration"] else ""
        print(f"  {host['node_id']}  {host['url']}  (key {host['key'][:16]}…{registration})")
        print(f"      enrolled {_when(host['enrolled_at'])}, last heard {_when(host['last_heard'])}")


def print_status(report: dict[str, Any]) -> None:
    print(f"Keeper {report['keeper_id']}")
    print(f"  key:             {report['keeper_key']}")
    print(f"  data directory:  {report['data_dir']} (schema {report['schema_version']})")
    print(f"  listening:       {'yes' if report.get('listening') else 'no'} ({report['listen']})")
    print(f"  hosts:           {len(report['hosts'])}")
    print_hosts(report)
    print(f"  holding:         {report['residents_held']} residents, {report['bytes_held']} bytes of replicas")
    for epoch in report["epochs"]:
        last = epoch["last_challenge"]
        proof = "never challenged" if last is None else f"last challenge {_when(last['at'])}: {last['outcome']}"
        print(
            f"    {epoch['resident_id']} epoch {epoch['epoch']} ({epoch['host']}): {epoch['state']}, "
            f"{epoch['bytes']} of {epoch['length']} bytes, share x={epoch['x']} of {epoch['threshold']}; {proof}"
        )
    print(f"  event log:       {report['event_log_entries']} entries, chain {report['event_log_chain']}")
    strangers = report.get("strangers")
    if strangers is not None:
        print(
            f"  strangers:       {strangers['rate_limited']} requests rate-limited, not logged, since the keeper "
            f"started ({strangers['keys_tracked']} keys tracked)"
        )
