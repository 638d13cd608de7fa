"""Repair issues (HA's issue registry): Jarvis unreachable for a while, or its key refused.

Both are raised and cleared by what the integration sees: the coordinator's `/health` reads
and key checks, and the services' answers. Neither is fixable from the repairs dialog itself:
the unreachable one clears when Jarvis answers again, the key one when a reauthentication
(started at the same time) stores a key Jarvis accepts.
"""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN, ISSUE_INVALID_AUTH, ISSUE_UNREACHABLE


def issue_id(kind: str, entry: ConfigEntry) -> str:
    """The issue's id: its kind and the entry, so two Jarvis instances get two issues."""
    return f"{kind}_{entry.entry_id}"


@callback
def raise_unreachable(hass: HomeAssistant, entry: ConfigEntry, minutes: int) -> None:
    """Jarvis has not answered `/health` for `minutes`."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id(ISSUE_UNREACHABLE, entry),
        is_fixable=False,
        is_persistent=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key=ISSUE_UNREACHABLE,
        translation_placeholders={
            "title": entry.title,
            "host": str(entry.data[CONF_HOST]),
            "port": str(entry.data[CONF_PORT]),
            "minutes": str(minutes),
        },
    )


@callback
def raise_invalid_auth(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Jarvis refused the stored API key."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id(ISSUE_INVALID_AUTH, entry),
        is_fixable=False,
        is_persistent=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key=ISSUE_INVALID_AUTH,
        translation_placeholders={"title": entry.title},
    )


@callback
def clear(hass: HomeAssistant, kind: str, entry: ConfigEntry) -> None:
    """The problem is gone (deleting an issue that is not there is a no-op)."""
    ir.async_delete_issue(hass, DOMAIN, issue_id(kind, entry))


@callback
def clear_all(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """The entry is removed: so are its issues."""
    for kind in (ISSUE_UNREACHABLE, ISSUE_INVALID_AUTH):
        clear(hass, kind, entry)
