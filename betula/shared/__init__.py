"""Shared state and pub/sub (issue 16): the hub that holds them (``hub.py``), what crosses
the master's socket (``wire.py``), the master's server (``server.py``) and the workers'
backends (``client.py``). Apps use ``betula.state`` and ``betula.pubsub``."""
