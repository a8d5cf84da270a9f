"""One broadcast engine as a process of its own, for the two-daemons test.

`python -m tests.engine_process DATA_DIR ISO_TIME TICKS` opens the store, ticks an
Engine with its clock fixed at ISO_TIME (then one hour later per tick), and prints one
JSON line per slot it aired: {"broadcast": id, "slot": iso}. Dispatch and alarms are
recording leaves; the store, the claims and the engine are loacam's own.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.exc import OperationalError

from daemon.broadcasts.engine import Engine
from daemon.broadcasts.store import BroadcastRecord, ExecutionRecord
from daemon.store import Store


async def main(data: Path, start: datetime, ticks: int) -> None:
    now = start
    store = await Store.open(data)

    async def dispatch(broadcast: BroadcastRecord, execution: ExecutionRecord) -> None:
        line = json.dumps({"broadcast": broadcast.id, "slot": execution.slot.isoformat()})
        sys.stdout.write(line + "\n")

    async def alarm(kind: str, message: str, *, subject: str = "", active: bool = True) -> None:
        pass

    def elapsed() -> float:  # the hours between ticks pass; they are not a clock jump
        return (now - start).total_seconds()

    engine = Engine(store, dispatch=dispatch, alarm=alarm, clock=lambda: now, monotonic=elapsed)
    try:
        for _ in range(ticks):
            while True:
                try:
                    await engine.tick()
                    break
                except OperationalError:  # the other process holds the write lock: again
                    continue
            now += timedelta(hours=1)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), datetime.fromisoformat(sys.argv[2]), int(sys.argv[3])))
