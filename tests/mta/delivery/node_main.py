"""One delivery node in its own process (for the two-node test): ``python node_main.py CONFIG``.

CONFIG is a JSON file: ``{"settings": {...TOML sections...}, "owner": "node-a"}``. The
node runs ``DeliveryScheduler.run`` until SIGTERM, then stops gracefully.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from phigate.config import settings_from_mapping
from phigate.mta.delivery.scheduler import DeliveryScheduler
from phigate.queue.crypto import MasterKey
from phigate.queue.db import make_engine
from phigate.queue.store import SqlQueueStore


async def main(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    settings = settings_from_mapping(config["settings"])
    engine = make_engine(settings.storage.url)
    store = SqlQueueStore(engine, MasterKey.load(settings.storage.master_key_file))
    scheduler = DeliveryScheduler(settings, store, owner=config["owner"])
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    try:
        await scheduler.run(stop)
    finally:
        engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
