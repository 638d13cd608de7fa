"""Browses `_wyoming._tcp` (or another type) with python-zeroconf (the library Home Assistant
uses) and prints the record for one instance as JSON:
{"port": ..., "addresses": [...], "properties": {TXT key: value}}.

avahi answers on each interface with that interface's addresses, and the answer over loopback
can arrive first (a freshly started avahi-daemon may still be probing the others): a record that
holds only loopback or link-local addresses is printed only when the timeout passes without one
that another host could use. Prints {} when the record does not appear in time.

    browse.py INSTANCE_NAME TIMEOUT_SECONDS [SERVICE_TYPE, default _wyoming._tcp.local.]
"""

import ipaddress
import json
import sys
import threading
import time

from zeroconf import ServiceBrowser, ServiceListener, Zeroconf

name, timeout = sys.argv[1], float(sys.argv[2])
SERVICE = sys.argv[3] if len(sys.argv) > 3 else "_wyoming._tcp.local."
WANTED = f"{name}.{SERVICE}"
appeared = threading.Event()


class Listener(ServiceListener):
    def add_service(self, zc, type_, service_name):
        if service_name == WANTED:
            appeared.set()

    def update_service(self, zc, type_, service_name):
        self.add_service(zc, type_, service_name)

    def remove_service(self, zc, type_, service_name):
        pass


def routable(address):
    ip = ipaddress.ip_address(address.split("%")[0])
    return not (ip.is_loopback or ip.is_link_local or ip.is_unspecified)


def record_of(info):
    properties = {
        k.decode(): (v.decode() if v is not None else None) for k, v in info.properties.items()
    }
    return {"port": info.port, "addresses": info.parsed_addresses(), "properties": properties}


deadline = time.monotonic() + timeout
zc = Zeroconf()
ServiceBrowser(zc, SERVICE, Listener())
result = {}
if appeared.wait(timeout):
    # Each try reads every address cached so far (answers from all interfaces) and asks again.
    while True:
        info = zc.get_service_info(SERVICE, WANTED, timeout=1000)
        if info is not None:
            result = record_of(info)
            if any(routable(a) for a in result["addresses"]):
                break
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
zc.close()
print(json.dumps(result), flush=True)
