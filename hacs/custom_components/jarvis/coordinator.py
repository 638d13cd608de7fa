"""Reads Jarvis's `/health` every 30 s and checks the key every few minutes.

The coordinator's success is the HTTP API's connectivity; its failures, once they have lasted
`UNREACHABLE_REPAIR_AFTER`, raise a repair issue. A refused key raises another and starts a
reauthentication (`ConfigEntryAuthFailed`). Both issues are cleared by the next success.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
import logging
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed
from homeassistant.util import dt as dt_util

from . import issues
from .api import (
    JarvisAuthError,
    JarvisClient,
    JarvisConnectionError,
    JarvisRateLimitedError,
)
from .const import (
    DOMAIN,
    ISSUE_INVALID_AUTH,
    ISSUE_UNREACHABLE,
    KEY_CHECK_INTERVAL,
    UNREACHABLE_REPAIR_AFTER,
    UPDATE_INTERVAL,
)

_LOGGER = logging.getLogger(__package__)

type JarvisConfigEntry = ConfigEntry[JarvisRuntime]


@dataclass(slots=True)
class Reply:
    """The last `jarvis.command` round trip."""

    latency_ms: float
    at: datetime


@dataclass(slots=True)
class JarvisRuntime:
    """What a loaded entry holds (`entry.runtime_data`)."""

    client: JarvisClient
    coordinator: JarvisCoordinator
    last_reply: Reply | None = None
    #: Whether the last service call was answered, for diagnostics.
    last_error: str | None = field(default=None)


def down_since(hass: HomeAssistant) -> dict[str, datetime]:
    """When each entry's Jarvis stopped answering. Kept outside the coordinator because a
    set-up that fails is retried with a new one, and the clock must keep running across them."""
    return hass.data.setdefault(DOMAIN, {}).setdefault("down_since", {})


class JarvisCoordinator(DataUpdateCoordinator[dict[str, Any]]):
    """`/health`, and now and then the key."""

    config_entry: JarvisConfigEntry

    def __init__(
        self, hass: HomeAssistant, entry: JarvisConfigEntry, client: JarvisClient
    ) -> None:
        super().__init__(
            hass,
            _LOGGER,
            config_entry=entry,
            name=DOMAIN,
            update_interval=UPDATE_INTERVAL,
        )
        self.client = client
        #: Whether the last `/health` read was answered (a refused key does not change it).
        self.reachable = False
        self._key_checked_at: datetime | None = None

    def key_refused(self) -> None:
        """A request was answered 401: raise the issue, check the key at the next update."""
        self._key_checked_at = None
        issues.raise_invalid_auth(self.hass, self.config_entry)

    def key_accepted(self) -> None:
        """A keyed request went through: the key is good (for a while)."""
        self._key_checked_at = dt_util.utcnow()
        issues.clear(self.hass, ISSUE_INVALID_AUTH, self.config_entry)

    async def _async_update_data(self) -> dict[str, Any]:
        entry = self.config_entry
        since = down_since(self.hass)
        try:
            health = await self.client.health()
        except JarvisConnectionError as err:
            self.reachable = False
            now = dt_util.utcnow()
            first = since.setdefault(entry.entry_id, now)
            if now - first >= UNREACHABLE_REPAIR_AFTER:
                issues.raise_unreachable(
                    self.hass, entry, int((now - first).total_seconds() // 60)
                )
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="cannot_connect",
                translation_placeholders={"error": str(err)},
            ) from err
        self.reachable = True
        since.pop(entry.entry_id, None)
        issues.clear(self.hass, ISSUE_UNREACHABLE, entry)

        due = (
            self._key_checked_at is None
            or dt_util.utcnow() - self._key_checked_at >= KEY_CHECK_INTERVAL
        )
        if due:
            try:
                await self.client.check_key()
            except JarvisAuthError as err:
                self.key_refused()
                raise ConfigEntryAuthFailed(
                    translation_domain=DOMAIN,
                    translation_key="invalid_auth",
                    translation_placeholders={"title": entry.title},
                ) from err
            except JarvisRateLimitedError:
                # The HA host used its command budget; the key is checked next time.
                pass
            except JarvisConnectionError as err:
                raise UpdateFailed(
                    translation_domain=DOMAIN,
                    translation_key="cannot_connect",
                    translation_placeholders={"error": str(err)},
                ) from err
            else:
                self.key_accepted()
        return health
