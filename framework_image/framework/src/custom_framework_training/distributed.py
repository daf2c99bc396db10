"""Rendezvous variables that distributed frameworks (torch.distributed and alike) read."""

from __future__ import annotations

DEFAULT_MASTER_PORT = 7777


def rendezvous_settings(hosts: list[str], current_host: str, port: int = DEFAULT_MASTER_PORT) -> dict[str, str]:
    """MASTER_ADDR/PORT, WORLD_SIZE and RANK for a multi-host job; nothing for one host.

    The toolkit lists hosts sorted, so every host derives the same leader and ranks.
    """
    if len(hosts) < 2:
        return {}
    ordered = sorted(hosts)
    if current_host not in ordered:
        raise ValueError(f"current host {current_host!r} is not among the hosts {ordered}")
    return {
        "MASTER_ADDR": ordered[0],
        "MASTER_PORT": str(port),
        "WORLD_SIZE": str(len(ordered)),
        "RANK": str(ordered.index(current_host)),
        "NODE_RANK": str(ordered.index(current_host)),
    }
