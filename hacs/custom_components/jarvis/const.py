"""Constants of the Jarvis integration."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

DOMAIN: Final = "jarvis"

#: Jarvis's HTTP API port (`http.addr`, default 0.0.0.0:10701).
DEFAULT_PORT: Final = 10701

#: How often `/health` is read: the connectivity entity and the repairs follow it.
UPDATE_INTERVAL: Final = timedelta(seconds=30)
#: How often the key is checked between service calls. Each check spends one of the
#: `http.rate_limit_per_minute` commands the HA host may send, so it is rare.
KEY_CHECK_INTERVAL: Final = timedelta(minutes=5)
#: A repair issue is raised once Jarvis has been unreachable for this long: a restart or a
#: short network hiccup is not worth one.
UNREACHABLE_REPAIR_AFTER: Final = timedelta(minutes=5)

#: `/health` answers at once; anything slower is a network problem.
HEALTH_TIMEOUT: Final = 10.0
#: A command may run a Proxmox action to its end (a guest shutdown waits for the guest).
COMMAND_TIMEOUT: Final = 180.0
#: An event is committed before Jarvis answers (at most 5 s, then 202).
EVENT_TIMEOUT: Final = 30.0

SERVICE_COMMAND: Final = "command"
SERVICE_EVENT: Final = "event"

ATTR_CONFIG_ENTRY_ID: Final = "config_entry_id"
ATTR_TEXT: Final = "text"
ATTR_CONVERSATION_ID: Final = "conversation_id"
ATTR_SOURCE: Final = "source"
ATTR_KIND: Final = "kind"
ATTR_ENTITY: Final = "entity"
ATTR_AREA: Final = "area"
ATTR_TIME: Final = "time"
ATTR_END_TIME: Final = "end_time"
ATTR_ID: Final = "id"
ATTR_ATTRIBUTES: Final = "attributes"

#: Repair issue ids, suffixed with the config entry id.
ISSUE_UNREACHABLE: Final = "unreachable"
ISSUE_INVALID_AUTH: Final = "invalid_auth"

#: Dispatcher signal (formatted with the entry id) sent after each command's reply.
SIGNAL_REPLY: Final = "jarvis_reply_{}"
