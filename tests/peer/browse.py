"""Browses `_wyoming._tcp` (or another type) with python-zeroconf (the library Home Assistant
uses) and prints the record for one instance as JSON:
{"port": ..., "addresses": [...], "properties": {TXT key: value}}.

    browse.py INSTANCE_NAME TIMEOUT_SECONDS [SERVICE_TYPE, default _wyoming._tcp.local.]
"""

import json
import sys
import threading

from zeroconf import ServiceBrowser, ServiceListener, Zeroconf

name, timeout = sys.argv[1], float(sys.argv[2])
SERVICE = sys.argv[3] if len(sys.argv) > 3 else "_wyoming._tcp.local."
found = threading.Event()
result = {}


class Listener(ServiceListener):
    def add_service(self, zc, type_, service_name):
        if service_name != f"{name}.{SERVICE}":
            return
        info = zc.get_service_info(type_, service_name, timeout=3000)
        if info is not None:
            properties = {
                k.decode(): (v.decode() if v is not None else None)
                for k, v in info.properties.items()
            }
            result.update(
                port=info.port, addresses=info.parsed_addresses(), properties=properties
            )
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
