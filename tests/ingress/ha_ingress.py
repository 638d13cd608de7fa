"""Home Assistant's ingress, in front of Jarvis, for the panel tests.

    ha_ingress.py JARVIS_HOST:PORT TOKEN

Two hops, as in a real installation:

1. Home Assistant core's own ingress view (`homeassistant.components.hassio.ingress`, imported
   from the installed Home Assistant, not copied): `/api/hassio_ingress/<token>/...` → the
   Supervisor, with `X-Ingress-Path`, `X-Hass-Source` and `X-Forwarded-*`, compression of
   compressible responses, and WebSockets proxied message by message.
2. The Supervisor's ingress (`supervisor/api/ingress.py` of home-assistant/supervisor, Apache-2.0,
   adapted: the app lookup, the session cookie and the user headers are left out):
   `/ingress/<token>/...` → the add-on, passing the headers on (X-Forwarded-For becomes
   "<before>, <peer>"), WebSockets with 16 MiB messages.

Prints `PORT <n>` once it listens, then serves until killed."""

import asyncio
import sys
from ipaddress import ip_address

import aiohttp
from aiohttp import ClientTimeout, hdrs, web
from homeassistant.components.hassio.ingress import HassIOIngress

ADDON = sys.argv[1]
TOKEN = sys.argv[2]
MAX_WEBSOCKET_MESSAGE_SIZE = 16 * 1024 * 1024


def supervisor_headers(request: web.Request):
    headers = {}
    for name, value in request.headers.items():
        if name in (
            hdrs.CONTENT_LENGTH,
            hdrs.CONTENT_ENCODING,
            hdrs.TRANSFER_ENCODING,
            hdrs.SEC_WEBSOCKET_EXTENSIONS,
            hdrs.SEC_WEBSOCKET_PROTOCOL,
            hdrs.SEC_WEBSOCKET_VERSION,
            hdrs.SEC_WEBSOCKET_KEY,
            "X-Supervisor-Token",
            "X-Hassio-Key",
        ):
            continue
        headers[name] = value
    forward_for = request.headers.get(hdrs.X_FORWARDED_FOR)
    connected_ip = ip_address(request.transport.get_extra_info("peername")[0])
    # Sic: the Supervisor writes "None, <ip>" when there was no header before.
    headers[hdrs.X_FORWARDED_FOR] = f"{forward_for}, {connected_ip!s}"
    return headers


async def websocket_forward(ws_from, ws_to):
    try:
        async for msg in ws_from:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await ws_to.send_str(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await ws_to.send_bytes(msg.data)
            elif msg.type == aiohttp.WSMsgType.PING:
                await ws_to.ping(msg.data)
            elif msg.type == aiohttp.WSMsgType.PONG:
                await ws_to.pong(msg.data)
            elif ws_to.closed:
                await ws_to.close(code=ws_to.close_code, message=msg.extra)
    except RuntimeError:
        pass


async def supervisor(request: web.Request):
    session: aiohttp.ClientSession = request.app["session"]
    if request.match_info["token"] != TOKEN:
        raise web.HTTPServiceUnavailable
    url = f"http://{ADDON}/{request.match_info['path']}"
    headers = supervisor_headers(request)
    upgrade = request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
    if upgrade and "upgrade" in request.headers.get(hdrs.CONNECTION, "").lower():
        protocols = [
            p.strip() for p in request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL, "").split(",") if p.strip()
        ]
        ws_server = web.WebSocketResponse(
            protocols=protocols, autoclose=False, autoping=False, max_msg_size=MAX_WEBSOCKET_MESSAGE_SIZE
        )
        await ws_server.prepare(request)
        if request.query_string:
            url = f"{url}?{request.query_string}"
        async with session.ws_connect(
            url,
            headers=headers,
            protocols=protocols,
            autoclose=False,
            autoping=False,
            max_msg_size=MAX_WEBSOCKET_MESSAGE_SIZE,
        ) as ws_client:
            await asyncio.wait(
                [
                    asyncio.create_task(websocket_forward(ws_server, ws_client)),
                    asyncio.create_task(websocket_forward(ws_client, ws_server)),
                ],
                return_when=asyncio.FIRST_COMPLETED,
            )
        return ws_server
    async with session.request(
        request.method,
        url,
        headers=headers,
        params=request.query,
        allow_redirects=False,
        data=await request.read(),
        timeout=ClientTimeout(total=None),
        skip_auto_headers={hdrs.CONTENT_TYPE},
    ) as result:
        out = {
            k: v
            for k, v in result.headers.items()
            if k not in (hdrs.TRANSFER_ENCODING, hdrs.CONTENT_LENGTH, hdrs.CONTENT_TYPE, hdrs.CONTENT_ENCODING)
        }
        content_type = (result.headers.get(hdrs.CONTENT_TYPE) or result.content_type).partition(";")[0].strip()
        if hdrs.CONTENT_LENGTH in result.headers and int(result.headers[hdrs.CONTENT_LENGTH]) < 4_194_000:
            return web.Response(headers=out, status=result.status, content_type=content_type, body=await result.read())
        response = web.StreamResponse(status=result.status, headers=out)
        response.content_type = content_type
        response.headers["X-Accel-Buffering"] = "no"
        await response.prepare(request)
        try:
            async for data, _ in result.content.iter_chunks():
                await response.write(data)
        except (aiohttp.ClientError, ConnectionResetError, ConnectionError):
            pass
        return response


async def main():
    session = aiohttp.ClientSession(auto_decompress=False)
    # The Supervisor's side.
    sup = web.Application()
    sup["session"] = session
    sup.router.add_route("*", "/ingress/{token}/{path:.*}", supervisor)
    sup_runner = web.AppRunner(sup)
    await sup_runner.setup()
    sup_site = web.TCPSite(sup_runner, "127.0.0.1", 0)
    await sup_site.start()
    sup_port = sup_site._server.sockets[0].getsockname()[1]
    # Home Assistant's side: its own view, routed as HA routes it.
    view = HassIOIngress(f"127.0.0.1:{sup_port}", session)

    async def core(request: web.Request):
        return await view._handle(request, request.match_info["token"], request.match_info["path"])

    ha = web.Application()
    ha.router.add_route("*", "/api/hassio_ingress/{token}/{path:.*}", core)
    ha_runner = web.AppRunner(ha)
    await ha_runner.setup()
    ha_site = web.TCPSite(ha_runner, "127.0.0.1", 0)
    await ha_site.start()
    print(f"PORT {ha_site._server.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


asyncio.run(main())
