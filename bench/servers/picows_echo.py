"""picows echo server, the ceiling for a Python WebSocket server.

``python -m bench.servers.picows_echo PORT``. picows hands over frames, not messages, so it echoes
each frame as it comes (type, payload and FIN bit), which echoes fragmented messages too.
"""

from __future__ import annotations

import asyncio

from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    ws_create_server,
)

from bench.servers import MAX_MESSAGE_SIZE, port_from_argv


class EchoListener(WSListener):
    """Sends every data frame back; answers a close frame and hangs up."""

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            code = frame.get_close_code()
            # A close frame without a code is answered with 1000: code 0 may not be sent.
            if code == WSCloseCode.NO_INFO:
                code = WSCloseCode.OK
            transport.send_close(code)
            transport.disconnect()
        else:
            transport.send(frame.msg_type, frame.get_payload_as_memoryview(), frame.fin)


def listener_for(request: WSUpgradeRequest) -> EchoListener:
    return EchoListener()


async def main(port: int) -> None:
    server = await ws_create_server(
        listener_for, "127.0.0.1", port, max_frame_size=MAX_MESSAGE_SIZE
    )
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(port_from_argv()))
