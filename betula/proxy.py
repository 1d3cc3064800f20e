"""Proxy headers (``--proxy-headers``, ``--forwarded-allow-ips``): behind a proxy the
client, the scheme and the host an app sees are the ones the proxy says it served.

Only a connection from a trusted peer is read for them (``ProxyTrust``: the addresses and
CIDR ranges of ``--forwarded-allow-ips``, ``*`` for any; a Unix-socket peer is always
trusted); the protocol asks once per connection and gives the connection's streams the
trust (``stream.proxy``, None otherwise), and the adapters apply ``forwarded()`` to each
request's headers. An untrusted peer's headers are left as they are: the app sees them, the
server does not act on them.

Which headers: RFC 7239 ``Forwarded`` when the request has one (``for``, ``proto``,
``host``), else ``X-Forwarded-For`` / ``X-Forwarded-Proto`` / ``X-Forwarded-Host``. In a
chain (``client, proxy1, proxy2``, each proxy appending the address it was reached from),
the client is the right-most address that is not trusted: the addresses right of it were
added by proxies we trust, the ones left of it by a party we cannot vouch for. When every
address is trusted, the left-most. The scheme and host are the ones given with that hop
(the same position in their lists; the first when the lists are not the same length).
"""

from __future__ import annotations

import ipaddress
from typing import Any

__all__ = ["Forwarded", "ProxyTrust", "apply_to_environ", "apply_to_scope", "forwarded"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_TRUST_CACHE_MAX = 4096
_NAMES = frozenset((b"forwarded", b"x-forwarded-for", b"x-forwarded-proto",
                    b"x-forwarded-host"))


class ProxyTrust:
    """``--forwarded-allow-ips``: which peers may speak for their clients."""

    def __init__(self, allowed: str | list[str] | tuple[str, ...]) -> None:
        items = allowed.split(",") if isinstance(allowed, str) else list(allowed)
        self.any = False
        self.hosts: set[str] = set()
        self.networks: list[_Network] = []
        for item in (text.strip() for text in items):
            if not item:
                continue
            if item == "*":
                self.any = True
            elif "/" in item:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            else:
                self.hosts.add(str(ipaddress.ip_address(item.strip("[]"))))
        self._seen: dict[str, bool] = {}

    def trusts(self, host: str | None) -> bool:
        """Whether ``host`` (an address; None: a Unix-socket peer) is a trusted proxy."""
        if host is None or self.any:
            return True
        known = self._seen.get(host)
        if known is None:
            known = self._decide(host)
            if len(self._seen) >= _TRUST_CACHE_MAX:
                self._seen.clear()
            self._seen[host] = known
        return known

    def _decide(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return False  # not an address (a name, "unknown", an obfuscated id)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return str(address) in self.hosts or any(address in net for net in self.networks)


class Forwarded:
    """What a trusted proxy said of a request: the client (host, port), scheme, host."""

    __slots__ = ("client", "scheme", "host")

    def __init__(self, client: tuple[str, int] | None, scheme: str | None,
                 host: str | None) -> None:
        self.client = client
        self.scheme = scheme
        self.host = host


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _node(text: str) -> tuple[str, int]:
    """A ``for`` node (RFC 7239 §6): ``192.0.2.1``, ``192.0.2.1:80``, ``[2001:db8::1]:4711``,
    ``unknown``, ``_hidden``; (host, port), port 0 when not given."""
    text = text.strip().strip('"')
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    return host, int(port) if port.isdigit() else 0


def _rfc7239(values: list[str]) -> list[dict[str, str]]:
    elements: list[dict[str, str]] = []
    for value in values:
        for element in value.split(","):
            pairs: dict[str, str] = {}
            for pair in element.split(";"):
                name, sep, text = pair.partition("=")
                if sep:
                    pairs[name.strip().lower()] = text.strip().strip('"')
            if pairs:
                elements.append(pairs)
    return elements


def forwarded(headers: Any, trust: ProxyTrust) -> Forwarded | None:
    """The forwarded client, scheme and host of a request's (name, value) bytes pairs
    (names lowered) from a trusted peer, or None when it has no proxy headers."""
    given: dict[bytes, list[str]] = {}
    for name, value in headers:
        if name in _NAMES:
            given.setdefault(name, []).append(value.decode("latin-1"))
    if not given:
        return None
    if b"forwarded" in given:
        elements = _rfc7239(given[b"forwarded"])
        hops = [_node(e["for"]) if "for" in e else None for e in elements]
        schemes = [e.get("proto") for e in elements]
        hosts = [e.get("host") for e in elements]
    else:
        hops = [_node(part) for value in given.get(b"x-forwarded-for", ()) for part in
                _split(value)]
        schemes = [p for value in given.get(b"x-forwarded-proto", ()) for p in _split(value)]
        hosts = [p for value in given.get(b"x-forwarded-host", ()) for p in _split(value)]
    index = 0
    for position in range(len(hops) - 1, -1, -1):  # right-most untrusted
        hop = hops[position]
        index = position
        if hop is None or not trust.trusts(hop[0]):
            break
    client = hops[index] if hops else None

    def at(values: list[Any]) -> Any:
        if not values:
            return None
        return values[index] if len(values) == len(hops) else values[0]
    scheme = at(schemes)
    scheme = scheme.lower() if scheme and scheme.lower() in ("http", "https", "ws", "wss") \
        else None
    return Forwarded(client if client and client[0] not in ("", "unknown") else None, scheme,
                     at(hosts))



_HTTP_SCHEME = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_WS_SCHEME = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}


def apply_to_scope(scope: dict[str, Any], trust: ProxyTrust) -> None:
    """An ASGI scope (http or websocket) as the trusted proxy says: ``client``, ``scheme``
    and the ``host`` header."""
    found = forwarded(scope["headers"], trust)
    if found is None:
        return
    if found.client is not None:
        scope["client"] = found.client
    if found.scheme is not None:
        table = _WS_SCHEME if scope["type"] == "websocket" else _HTTP_SCHEME
        scope["scheme"] = table[found.scheme]
    if found.host is not None:
        host = found.host.encode("latin-1")
        fields = [(name, value) for name, value in scope["headers"] if name != b"host"]
        fields.append((b"host", host))
        scope["headers"] = fields


def apply_to_environ(environ: dict[str, Any], headers: Any, trust: ProxyTrust) -> None:
    """A WSGI environ as the trusted proxy says: ``REMOTE_ADDR``/``REMOTE_PORT``,
    ``wsgi.url_scheme``, ``HTTP_HOST`` and the ``SERVER_NAME``/``SERVER_PORT`` it implies."""
    found = forwarded(headers, trust)
    if found is None:
        return
    if found.client is not None:
        environ["REMOTE_ADDR"] = found.client[0]
        environ["REMOTE_PORT"] = str(found.client[1])
    if found.scheme is not None:
        environ["wsgi.url_scheme"] = _HTTP_SCHEME[found.scheme]
    if found.host is not None:
        environ["HTTP_HOST"] = found.host
        name, port = _node(found.host)
        environ["SERVER_NAME"] = name
        environ["SERVER_PORT"] = str(port or (443 if environ["wsgi.url_scheme"] == "https"
                                              else 80))
