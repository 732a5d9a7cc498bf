#!/usr/bin/env python3
"""An example Python application, pointed at a mounted endpoints ConfigMap.

libclientconfig's Watcher follows the ConfigMap (the kubelet's ..data swap) and
routes each key with the same ketama ring every other client uses; pymemcache
supplies one plain per-server client. Neither pymemcache's HashClient
(rendezvous hashing) nor python-memcached's Client (crc32 modulo the server
count) routes like ketama clients, so they are not used for the choice.

    PYTHONPATH=build/python python3 pymemcache_app.py /etc/memcached-endpoints
"""
import sys

import clientconfig
from pymemcache.client.base import Client as ServerClient


class Router:
    """get/set/delete over a memcached cluster described by a mounted ConfigMap."""

    def __init__(self, config_dir, connect_timeout=0.5, timeout=0.5):
        self.watcher = clientconfig.Watcher(config_dir)
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.clients = {}  # (address, port) -> pymemcache client
        self.version = None

    def _sync(self):
        snap = self.watcher.current()
        if snap.version != self.version:
            # Close connections to servers that left (the operator's drain waits
            # for them to go), keep the rest.
            wanted = {(s.address, s.port) for s in snap.servers}
            wanted |= {(s.address, s.port) for s in snap.previous_servers}
            for endpoint in list(self.clients):
                if endpoint not in wanted:
                    self.clients.pop(endpoint).close()
            self.version = snap.version
        return snap

    def _client(self, server):
        endpoint = (server.address, server.port)
        c = self.clients.get(endpoint)
        if c is None:
            c = ServerClient(endpoint, connect_timeout=self.connect_timeout, timeout=self.timeout)
            self.clients[endpoint] = c
        return c

    def get(self, key):
        owner, previous = self._sync().route(key)
        value = self._client(owner).get(key)
        if value is None and previous is not None:
            # Transition window: the key may still live on its previous owner.
            value = self._client(previous).get(key)
        return value

    def set(self, key, value, expire=0):
        owner, _ = self._sync().route(key)
        return self._client(owner).set(key, value, expire=expire)

    def delete(self, key):
        owner, _ = self._sync().route(key)
        return self._client(owner).delete(key)

    def owner(self, key):
        return self._sync().owner(key)

    def close(self):
        for c in self.clients.values():
            c.close()
        self.clients.clear()


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    mc = Router(argv[1])
    mc.set("user:100", '{"name": "Alice"}')
    mc.set("product:50", '{"name": "Gadget"}')
    for key in ("user:100", "product:50"):
        print(key, "->", mc.owner(key).name, mc.get(key).decode())
    mc.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
