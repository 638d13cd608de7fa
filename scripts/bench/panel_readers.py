"""Open panels for the panel benchmark: N clients that follow Jarvis's activity feed over the
WebSocket the page itself uses (`panel/api/feed/socket`), each with its own page token, and read
every message until killed. One process for all of them, so what the readers cost stays out of
Jarvis's process and a browser-like client is measured rather than `curl` on the event stream.

    python panel_readers.py http://127.0.0.1:PORT/panel/ 50
"""

import asyncio
import sys

import aiohttp


async def reader(session: aiohttp.ClientSession, base: str, opened: list) -> None:
    async with session.get(base + "api/session") as r:
        r.raise_for_status()
        csrf = (await r.json())["csrf"]
    url = base.replace("http", "ws", 1) + "api/feed/socket?csrf=" + csrf
    async with session.ws_connect(url, max_msg_size=0) as ws:
        opened.append(url)
        async for _ in ws:
            pass


async def main(base: str, count: int) -> None:
    opened: list = []
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(reader(session, base, opened) for _ in range(count)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
