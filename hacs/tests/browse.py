"""Browses one zeroconf record with python-zeroconf (what Home Assistant's zeroconf uses) and
prints it as JSON, in the shape of HA's ZeroconfServiceInfo: addresses, port, hostname, type,
name and TXT properties. Prints {} when the record does not appear in time.

    browse.py SERVICE_TYPE INSTANCE_NAME TIMEOUT_SECONDS
"""

import json
import sys
import threading

from zeroconf import ServiceBrowser, ServiceListener, Zeroconf

service_type, name, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
wanted = f"{name}.{service_type}"
found = threading.Event()
record = {}


class Listener(ServiceListener):
    def add_service(self, zc, type_, service_name):
        if service_name != wanted:
            return
        info = zc.get_service_info(type_, service_name, timeout=3000)
        if info is None:
            return
        record.update(
            addresses=info.parsed_scoped_addresses(),
            port=info.port,
            hostname=info.server,
            type=type_,
            name=service_name,
            properties={
                k.decode(): (v.decode() if v is not None else None)
                for k, v in info.properties.items()
            },
        )
        found.set()

    def update_service(self, zc, type_, service_name):
        self.add_service(zc, type_, service_name)

    def remove_service(self, zc, type_, service_name):
        pass


zc = Zeroconf()
ServiceBrowser(zc, service_type, Listener())
found.wait(timeout)
zc.close()
print(json.dumps(record), flush=True)
