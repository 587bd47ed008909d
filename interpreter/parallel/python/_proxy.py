"""Proxy headers and the root path: what a server behind nginx or a load balancer must
apply before the application sees a request (``-m parallel.serve --proxy-headers
--forwarded-allow-ips ... --root-path ...``, or ``parallel.wsgi(app, proxy_headers=...)``).

Proxy headers are believed only from a trusted peer: the connection's own address must be
in ``forwarded_allow_ips`` (addresses and CIDRs, comma-separated, or ``*``). From such a
peer, RFC 7239 ``Forwarded`` (when present) or else ``X-Forwarded-For``,
``X-Forwarded-Proto`` and ``X-Forwarded-Host`` set the client address, the scheme and the
host the application sees. The client is found as uvicorn finds it: walking the
``for`` addresses from the nearest proxy outwards, the first one that is not itself a
trusted proxy (all trusted: the farthest). The scheme and host are the nearest proxy's
(the last value; the ``Forwarded`` element of the chosen hop). From any other peer the
headers change nothing: a client cannot claim to be someone else.

The root path is where a proxy mounts the application (``/api``): WSGI's ``SCRIPT_NAME``
and ASGI's ``root_path``. As uvicorn does, a proxy that strips the prefix and one that
passes it on both work: WSGI's ``PATH_INFO`` loses the prefix when it has it, and ASGI's
``path`` (and ``raw_path``) gain it when they lack it (ASGI's path includes root_path).
"""
from __future__ import annotations

import ipaddress

__all__ = ["TrustedPeers", "ProxyHeaders", "RootPath", "request_adjuster"]


class TrustedPeers:
    """The peers whose proxy headers are believed: ``"*"``, or a comma-separated list of
    addresses and networks (``"127.0.0.1, 10.0.0.0/8, ::1"``)."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.everyone = False
        self.networks: list = []
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            if item == "*":
                self.everyone = True
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"forwarded_allow_ips: {item!r} is not an address or a "
                                 f"network (e.g. 127.0.0.1, 10.0.0.0/8, ::1, or *)") from None
        self._seen: dict[str, bool] = {}  # address text -> trusted: one parse per address

    def __contains__(self, host) -> bool:
        if self.everyone:
            return True
        known = self._seen.get(host)
        if known is not None:
            return known
        try:
            address = ipaddress.ip_address(host)
        except (TypeError, ValueError):
            trusted = False  # not an address (a Unix socket peer, a name): never trusted
        else:
            trusted = any(address in network for network in self.networks)
        if len(self._seen) < 4096:  # bounded: a scan from many addresses cannot grow it
            self._seen[host] = trusted
        return trusted


def _forwarded_elements(value: str) -> list[dict[str, str]]:
    """RFC 7239 ``Forwarded`` as a list of {parameter: value}, nearest proxy last."""
    elements = []
    for element in value.split(","):
        pairs: dict[str, str] = {}
        for pair in element.split(";"):
            name, sep, text = pair.partition("=")
            if not sep:
                continue
            text = text.strip()
            if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
                text = text[1:-1].replace('\\"', '"')
            pairs[name.strip().lower()] = text
        elements.append(pairs)
    return elements


def _node_host(node: str) -> str:
    """The address of an RFC 7239 node (``192.0.2.1``, ``"[2001:db8::1]:4711"``,
    ``1.2.3.4:80``, ``unknown``, ``_hidden``)."""
    if node.startswith("["):
        return node[1:node.find("]")] if "]" in node else node[1:]
    if node.count(":") == 1:
        return node.split(":", 1)[0]
    return node


class ProxyHeaders:
    """What a trusted peer's proxy headers say: ``resolve(peer, forwarded, xff, proto,
    host)`` -> (client host or None, scheme or None, host or None)."""

    def __init__(self, trusted: TrustedPeers) -> None:
        self.trusted = trusted

    def _client(self, hosts: list[str]) -> str | None:
        # From the nearest proxy outwards: the first address that is not a trusted proxy.
        for host in reversed(hosts):
            if host not in self.trusted:
                return host
        return hosts[0] if hosts else None

    def resolve(self, peer, forwarded, xff, proto, host):
        if peer not in self.trusted:
            return None, None, None
        if forwarded:
            elements = _forwarded_elements(forwarded)
            chosen = None
            for element in reversed(elements):
                chosen = element
                node = _node_host(element.get("for", ""))
                if node not in self.trusted:
                    break
            if chosen is None:
                return None, None, None
            node = _node_host(chosen.get("for", ""))
            client = node if node and not node.startswith("_") and node != "unknown" else None
            return client, chosen.get("proto", "").lower() or None, chosen.get("host") or None
        client = scheme = forwarded_host = None
        if xff:
            client = self._client([h.strip() for h in xff.split(",") if h.strip()])
        if proto:
            scheme = proto.rsplit(",", 1)[-1].strip().lower() or None
        if host:
            forwarded_host = host.rsplit(",", 1)[-1].strip() or None
        return client, scheme, forwarded_host

    def apply_environ(self, environ: dict) -> None:
        """Applies a WSGI request's proxy headers to its environ."""
        client, scheme, host = self.resolve(
            environ.get("REMOTE_ADDR"), environ.get("HTTP_FORWARDED"),
            environ.get("HTTP_X_FORWARDED_FOR"), environ.get("HTTP_X_FORWARDED_PROTO"),
            environ.get("HTTP_X_FORWARDED_HOST"))
        if client:
            environ["REMOTE_ADDR"] = client
            environ["REMOTE_PORT"] = "0"  # the client's port is not forwarded
        if scheme in ("http", "https"):
            environ["wsgi.url_scheme"] = scheme
        if host:
            environ["HTTP_HOST"] = host

    def apply_scope(self, scope: dict) -> None:
        """Applies an ASGI request's proxy headers to its scope (``client``, ``scheme``
        and the ``host`` header)."""
        peer = scope.get("client")
        if not peer or peer[0] not in self.trusted:
            return
        found: dict[bytes, str] = {}
        for name, value in scope["headers"]:
            if name in _PROXY_FIELDS:
                text = value.decode("latin-1")
                found[name] = found[name] + ", " + text if name in found else text
        if not found:
            return
        client, scheme, host = self.resolve(
            peer[0], found.get(b"forwarded"), found.get(b"x-forwarded-for"),
            found.get(b"x-forwarded-proto"), found.get(b"x-forwarded-host"))
        if client:
            scope["client"] = (client, 0)
        if scheme in ("http", "https"):
            scope["scheme"] = scheme
        if host:
            encoded = host.encode("latin-1")
            scope["headers"] = [(n, encoded if n == b"host" else v) for n, v in scope["headers"]]
            if not any(n == b"host" for n, _ in scope["headers"]):
                scope["headers"].append((b"host", encoded))


_PROXY_FIELDS = frozenset((b"forwarded", b"x-forwarded-for", b"x-forwarded-proto",
                           b"x-forwarded-host"))


class RootPath:
    """``root_path``: where the application is mounted (``"/api"``; ``""``: at the root)."""

    def __init__(self, root_path: str) -> None:
        if root_path and (not root_path.startswith("/") or root_path.endswith("/")):
            raise ValueError(f"root_path must start with '/' and not end with one (e.g. "
                             f"'/api'), not {root_path!r}")
        self.root = root_path

    def _has_prefix(self, path: str) -> bool:
        root = self.root
        return path == root or (path.startswith(root) and path[len(root)] == "/")

    def apply_environ(self, environ: dict) -> None:
        """SCRIPT_NAME is the root; PATH_INFO loses it when the proxy passed it on."""
        environ["SCRIPT_NAME"] = self.root
        path = environ["PATH_INFO"]
        if self._has_prefix(path):
            environ["PATH_INFO"] = path[len(self.root):]

    def apply_scope(self, scope: dict) -> None:
        """root_path is the root; path and raw_path gain it when the proxy stripped it."""
        scope["root_path"] = self.root
        if not self._has_prefix(scope["path"]):
            scope["path"] = self.root + scope["path"]
            scope["raw_path"] = self.root.encode("utf-8") + scope["raw_path"]


def request_adjuster(kind: str, root_path: str, proxy_headers: bool,
                     forwarded_allow_ips: str):
    """The function a gateway applies to each request's ``kind`` ("environ" or "scope")
    for these options, or None when there is nothing to apply (the common case costs one
    test per request). Raises ValueError for a malformed root path or address list."""
    if not isinstance(root_path, str):
        raise TypeError(f"root_path must be a str, not {type(root_path).__name__}")
    if not isinstance(forwarded_allow_ips, str):
        raise TypeError(f"forwarded_allow_ips must be a str, not "
                        f"{type(forwarded_allow_ips).__name__}")
    steps = []
    if proxy_headers:
        steps.append(getattr(ProxyHeaders(TrustedPeers(forwarded_allow_ips)), "apply_" + kind))
    else:
        TrustedPeers(forwarded_allow_ips)  # a malformed list is an error even when unused
    if root_path:
        steps.append(getattr(RootPath(root_path), "apply_" + kind))
    if not steps:
        return None
    if len(steps) == 1:
        return steps[0]

    def adjust(request: dict) -> None:
        for step in steps:  # proxy headers first: the root path reads the path only
            step(request)
    return adjust
