"""Diagnostics: the entry (key redacted), Jarvis's `/health` as last read, the coordinator's
state, the last reply's latency and error, and this entry's open repair issues.

`/health` holds no secret today; the keys below are redacted anyway, wherever they appear, so a
future field (an MQTT password, a Proxmox token) cannot leak into a shared file.
"""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_API_KEY, CONF_PASSWORD, CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN
from .coordinator import JarvisConfigEntry, down_since

TO_REDACT = {
    CONF_API_KEY,
    CONF_PASSWORD,
    CONF_TOKEN,
    "x-api-key",
    "token_secret",
    "secret",
    "approval",
    "approval_keyword",
}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: JarvisConfigEntry
) -> dict[str, Any]:
    """What a bug report needs, without the key."""
    entry_part = {
        "title": entry.title,
        "unique_id": entry.unique_id,
        "state": entry.state.value,
        "data": async_redact_data(dict(entry.data), TO_REDACT),
    }
    runtime = getattr(entry, "runtime_data", None)
    if runtime is None:
        # Not loaded (unreachable at start, or waiting for a new key): the entry is all there is.
        return {"entry": entry_part}
    coordinator = runtime.coordinator
    reply = runtime.last_reply
    since = down_since(hass).get(entry.entry_id)
    issues = [
        issue.issue_id
        for (domain, _), issue in ir.async_get(hass).issues.items()
        if domain == DOMAIN and issue.issue_id.endswith(entry.entry_id)
    ]
    return {
        "entry": entry_part,
        "api": {
            "base_url": runtime.client.base_url,
            "reachable": coordinator.reachable,
            "last_update_success": coordinator.last_update_success,
            "unreachable_since": since.isoformat() if since else None,
        },
        "health": async_redact_data(coordinator.data or {}, TO_REDACT),
        "last_reply": (
            None
            if reply is None
            else {"latency_ms": round(reply.latency_ms, 1), "at": reply.at.isoformat()}
        ),
        "last_error": runtime.last_error,
        "issues": sorted(issues),
    }
