"""The load generator: M aiosmtplib connections (STARTTLS, optional AUTH) share N messages.

A session the server ends with a 421 (aiosmtpd's per-session command limit, phigate's
``[submission] max_commands``: 1,000 MAILs) is opened again and the message sent again, as a
real sender does; ``reconnects`` counts them.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    accepted: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # seconds, accepted messages
    #: The queue id of each accepted message (the 250's "Queued as"), as ``latencies``.
    queue_ids: list[str] = field(default_factory=list)
    #: Sessions the server ended with a 421, after which the client connected again.
    reconnects: int = 0
    started: float = 0.0
    finished: float = 0.0

    @property
    def seconds(self) -> float:
        return self.finished - self.started

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run_load(port: int, messages: list[tuple[str, bytes]], *, connections: int,
                   sender: str, tls: ssl.SSLContext, login: tuple[str, str] | None
                   ) -> LoadResult:
    import aiosmtplib

    result = LoadResult()
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for item in messages:
        queue.put_nowait(item)
    ready = asyncio.Barrier(connections + 1)

    async def connect() -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, tls_context=tls,
                                 start_tls=True, timeout=120)
        await client.connect()
        if login:
            await client.login(*login)
        return client

    async def worker() -> None:
        client = await connect()
        await ready.wait()
        try:
            while True:
                try:
                    recipient, content = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                began = time.perf_counter()
                try:
                    _errors, reply = await client.sendmail(sender, [recipient], content)
                except aiosmtplib.SMTPResponseException as error:
                    if error.code == 421:  # the session is over: a new one, the same message
                        client.close()
                        result.reconnects += 1
                        client = await connect()
                        queue.put_nowait((recipient, content))
                        continue
                    key = f"{error.code} {error.message[:40]}"
                    result.refused[key] = result.refused.get(key, 0) + 1
                    continue
                except aiosmtplib.SMTPRecipientsRefused as error:
                    first = error.recipients[0]
                    key = f"{first.code} {first.message[:40]}"
                    result.refused[key] = result.refused.get(key, 0) + 1
                    continue
                result.latencies.append(time.perf_counter() - began)
                result.queue_ids.append(reply.rpartition(" ")[2])
                result.accepted += 1
        finally:
            try:
                await client.quit()
            except aiosmtplib.SMTPException:
                client.close()

    tasks = [asyncio.create_task(worker()) for _ in range(connections)]
    await ready.wait()
    result.started = time.perf_counter()
    await asyncio.gather(*tasks)
    result.finished = time.perf_counter()
    return result
