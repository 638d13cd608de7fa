"""Browses `_wyoming._tcp` with python-zeroconf (the library Home Assistant uses) and prints the
record for one instance as JSON: {"port": ..., "addresses": [...]}.

    browse.py INSTANCE_NAME TIMEOUT_SECONDS
"""

import json
import sys
import threading

from zeroconf import ServiceBrowser, ServiceListener, Zeroconf

SERVICE = "_wyoming._tcp.local."
name, timeout = sys.argv[1], float(sys.argv[2])
found = threading.Event()
result = {}


class Listener(ServiceListener):
    def add_service(self, zc, type_, service_name):
        if service_name != f"{name}.{SERVICE}":
            return
        info = zc.get_service_info(type_, service_name, timeout=3000)
        if info is not None:
            result.update(port=info.port, addresses=info.parsed_addresses())
            found.set()

    def update_service(self, zc, type_, service_name):
        self.add_service(zc, type_, service_name)

    def remove_service(self, zc, type_, service_name):
        pass


zc = Zeroconf()
ServiceBrowser(zc, SERVICE, Listener())
found.wait(timeout)
zc.close()
print(json.dumps(result), flush=True)
