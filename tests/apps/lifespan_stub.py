"""The lifespan protocol for test apps that have nothing to start or stop."""


async def serve_lifespan(receive, send) -> None:
    """Answer startup and shutdown until the server shuts the app down."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
