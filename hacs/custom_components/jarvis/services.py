"""The `jarvis.command` and `jarvis.event` actions.

`jarvis.command` sends text to `POST /v1/command` and returns Jarvis's answer as response data
(`reply`, `handled`, `intent`, `actions`, `pending_confirmation`, `conversation_id`, ...), so
a script reads it with `response_variable`. `jarvis.event` pushes an event into Jarvis's event
memory (`POST /v1/event`) and returns the key it was stored under.

With one Jarvis configured the actions need no target; with several, `config_entry_id` says
which one. A refused key raises a repair issue and starts a reauthentication.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import voluptuous as vol

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.util import dt as dt_util

from .api import (
    JarvisAuthError,
    JarvisError,
    JarvisRateLimitedError,
    JarvisRequestError,
    JarvisUnavailableError,
)
from .const import (
    ATTR_AREA,
    ATTR_ATTRIBUTES,
    ATTR_CONFIG_ENTRY_ID,
    ATTR_CONVERSATION_ID,
    ATTR_END_TIME,
    ATTR_ENTITY,
    ATTR_ID,
    ATTR_KIND,
    ATTR_SOURCE,
    ATTR_TEXT,
    ATTR_TIME,
    DOMAIN,
    SERVICE_COMMAND,
    SERVICE_EVENT,
    SIGNAL_REPLY,
)
from .coordinator import JarvisConfigEntry, Reply


def event_time(value: Any) -> str | float:
    """A time as Jarvis takes it: Unix seconds stay a number; a datetime, or a string HA can
    read as one, becomes RFC 3339 with an offset (a time without one is in HA's time zone)."""
    if isinstance(value, bool):
        raise vol.Invalid("a time is RFC 3339 text or Unix seconds, not true/false")
    if isinstance(value, int | float):
        return value
    if isinstance(value, datetime):
        parsed: datetime | None = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        parsed = dt_util.parse_datetime(text)
    else:
        parsed = None
    if parsed is None:
        raise vol.Invalid(
            f"{value!r} is not a time: use RFC 3339 (2026-12-04T07:30:00+01:00) or Unix seconds"
        )
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt_util.get_default_time_zone())
    return parsed.isoformat()


COMMAND_SCHEMA = vol.Schema(
    {
        vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string,
        vol.Required(ATTR_TEXT): vol.All(cv.string, vol.Strip, vol.Length(min=1)),
        vol.Optional(ATTR_CONVERSATION_ID): cv.string,
    }
)

EVENT_SCHEMA = vol.Schema(
    {
        vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string,
        vol.Optional(ATTR_SOURCE, default="ha"): cv.string,
        vol.Required(ATTR_KIND): vol.All(cv.string, vol.Strip, vol.Length(min=1)),
        vol.Optional(ATTR_ENTITY): cv.string,
        vol.Optional(ATTR_AREA): cv.string,
        vol.Optional(ATTR_TEXT): cv.string,
        vol.Optional(ATTR_TIME): event_time,
        vol.Optional(ATTR_END_TIME): event_time,
        vol.Optional(ATTR_ID): vol.Any(int, cv.string),
        vol.Optional(ATTR_ATTRIBUTES): dict,
    }
)


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Registers both actions (once, from `async_setup`)."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_COMMAND,
        _command,
        schema=COMMAND_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_EVENT,
        _event,
        schema=EVENT_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )


def _entry(call: ServiceCall) -> JarvisConfigEntry:
    """The entry the call names, or the only one there is."""
    hass = call.hass
    wanted = call.data.get(ATTR_CONFIG_ENTRY_ID)
    entries: list[JarvisConfigEntry] = hass.config_entries.async_entries(DOMAIN)
    if wanted is not None:
        entries = [e for e in entries if e.entry_id == wanted]
        if not entries:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="unknown_entry",
                translation_placeholders={"entry_id": wanted},
            )
    elif len(entries) > 1:
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="several_entries"
        )
    if not entries:
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="no_entry"
        )
    entry = entries[0]
    if entry.state is not ConfigEntryState.LOADED:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="not_loaded",
            translation_placeholders={"title": entry.title},
        )
    return entry


def _failed(
    hass: HomeAssistant, entry: JarvisConfigEntry, err: JarvisError
) -> HomeAssistantError:
    """The error a failed call raises; a refused key also starts a reauthentication."""
    runtime = entry.runtime_data
    runtime.last_error = f"{type(err).__name__}: {err}"
    if isinstance(err, JarvisAuthError):
        runtime.coordinator.key_refused()
        entry.async_start_reauth(hass)
        return HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="invalid_auth",
            translation_placeholders={"title": entry.title},
        )
    if isinstance(err, JarvisRateLimitedError):
        return HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="rate_limited",
            translation_placeholders={"error": str(err)},
        )
    if isinstance(err, JarvisRequestError):
        return ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="rejected",
            translation_placeholders={"status": str(err.status), "error": str(err)},
        )
    if isinstance(err, JarvisUnavailableError):
        return HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="unavailable",
            translation_placeholders={"error": str(err)},
        )
    # JarvisConnectionError: not reachable, or not answering like Jarvis.
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key="cannot_connect",
        translation_placeholders={"error": str(err)},
    )


async def _command(call: ServiceCall) -> ServiceResponse:
    """`jarvis.command`: Jarvis's answer, unchanged."""
    entry = _entry(call)
    runtime = entry.runtime_data
    try:
        answer = await runtime.client.command(
            call.data[ATTR_TEXT], call.data.get(ATTR_CONVERSATION_ID)
        )
    except JarvisError as err:
        raise _failed(call.hass, entry, err) from err
    runtime.last_error = None
    runtime.coordinator.key_accepted()
    runtime.last_reply = Reply(latency_ms=answer.latency_ms, at=dt_util.utcnow())
    async_dispatcher_send(call.hass, SIGNAL_REPLY.format(entry.entry_id))
    return answer.body if call.return_response else None


async def _event(call: ServiceCall) -> ServiceResponse:
    """`jarvis.event`: `{"key": ..., "stored": ...}` from Jarvis."""
    entry = _entry(call)
    runtime = entry.runtime_data
    body = {
        key: value
        for key, value in call.data.items()
        if key != ATTR_CONFIG_ENTRY_ID and value is not None
    }
    try:
        answer = await runtime.client.event(body)
    except JarvisError as err:
        raise _failed(call.hass, entry, err) from err
    runtime.last_error = None
    runtime.coordinator.key_accepted()
    return answer if call.return_response else None
