"""Config flow: host, port and API key, typed in or discovered over zeroconf; reauthentication
when Jarvis refuses the stored key.

Each step proves what it stores: `/health` must answer (else `cannot_connect`) and an empty
command must pass the key check (else `invalid_auth`). The entry's unique id is the instance
name Jarvis reports in `/health` and in its `_jarvis._tcp` record, so a discovered Jarvis that
is already configured only gets its address updated.
"""

from __future__ import annotations

from collections.abc import Mapping
import logging
from typing import Any

import voluptuous as vol

from homeassistant.config_entries import ConfigFlow, ConfigFlowResult
from homeassistant.const import CONF_API_KEY, CONF_HOST, CONF_PORT
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo

from .api import (
    JarvisAuthError,
    JarvisClient,
    JarvisConnectionError,
    JarvisError,
    JarvisRateLimitedError,
)
from .const import DEFAULT_PORT, DOMAIN

_LOGGER = logging.getLogger(__package__)

KEY_SELECTOR = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))


USER_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_HOST): str,
        vol.Required(CONF_PORT, default=DEFAULT_PORT): vol.All(
            vol.Coerce(int), vol.Range(min=1, max=65535)
        ),
        vol.Optional(CONF_API_KEY, default=""): KEY_SELECTOR,
    }
)


KEY_SCHEMA = vol.Schema({vol.Optional(CONF_API_KEY, default=""): KEY_SELECTOR})


class JarvisConfigFlow(ConfigFlow, domain=DOMAIN):
    """Adds a Jarvis."""

    VERSION = 1

    def __init__(self) -> None:
        self._host: str | None = None
        self._port: int = DEFAULT_PORT
        self._instance: str | None = None

    async def _validate(
        self, host: str, port: int, api_key: str
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """`/health`, then the key. Returns the health document and the form's errors."""
        client = JarvisClient(async_get_clientsession(self.hass), host, port, api_key)
        try:
            health = await client.health()
        except JarvisConnectionError as err:
            _LOGGER.debug("jarvis at %s:%s not reachable: %s", host, port, err)
            return {}, {"base": "cannot_connect"}
        try:
            await client.check_key()
        except JarvisAuthError:
            return health, {"base": "invalid_auth"}
        except JarvisRateLimitedError:
            return health, {"base": "rate_limited"}
        except JarvisError as err:
            _LOGGER.debug("jarvis at %s:%s key check failed: %s", host, port, err)
            return health, {"base": "cannot_connect"}
        return health, {}

    @staticmethod
    def _instance_of(health: Mapping[str, Any], host: str, port: int) -> str:
        """The unique id: the instance name (a Jarvis older than it: the address)."""
        instance = health.get("instance")
        return instance if isinstance(instance, str) and instance else f"{host}:{port}"

    async def async_step_user(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Host, port and key, typed in."""
        errors: dict[str, str] = {}
        if user_input is not None:
            host = user_input[CONF_HOST].strip()
            port = user_input[CONF_PORT]
            health, errors = await self._validate(host, port, user_input[CONF_API_KEY])
            if not errors:
                instance = self._instance_of(health, host, port)
                await self.async_set_unique_id(instance)
                self._abort_if_unique_id_configured(
                    updates={CONF_HOST: host, CONF_PORT: port}
                )
                return self.async_create_entry(
                    title=instance,
                    data={
                        CONF_HOST: host,
                        CONF_PORT: port,
                        CONF_API_KEY: user_input[CONF_API_KEY],
                    },
                )
        return self.async_show_form(
            step_id="user",
            # What was typed comes back after an error, except the key.
            data_schema=self.add_suggested_values_to_schema(
                USER_SCHEMA,
                {k: v for k, v in (user_input or {}).items() if k != CONF_API_KEY},
            ),
            errors=errors,
        )

    async def async_step_zeroconf(
        self, discovery_info: ZeroconfServiceInfo
    ) -> ConfigFlowResult:
        """A `_jarvis._tcp` record: its TXT `id` is the instance; the key is asked next."""
        service = discovery_info.type.removesuffix(".")
        instance = discovery_info.properties.get(
            "id"
        ) or discovery_info.name.removesuffix(f".{service}.").removesuffix(
            f".{service}"
        )
        host = discovery_info.host
        port = discovery_info.port or DEFAULT_PORT
        await self.async_set_unique_id(instance)
        # A Jarvis that moved: follow it (and reload the entry).
        self._abort_if_unique_id_configured(updates={CONF_HOST: host, CONF_PORT: port})
        client = JarvisClient(async_get_clientsession(self.hass), host, port, "")
        try:
            await client.health()
        except JarvisConnectionError:
            return self.async_abort(reason="cannot_connect")
        self._host, self._port, self._instance = host, port, instance
        self.context["title_placeholders"] = {"name": instance}
        return await self.async_step_zeroconf_confirm()

    async def async_step_zeroconf_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The discovered Jarvis's key."""
        assert self._host is not None and self._instance is not None
        errors: dict[str, str] = {}
        if user_input is not None:
            _, errors = await self._validate(
                self._host, self._port, user_input[CONF_API_KEY]
            )
            if not errors:
                return self.async_create_entry(
                    title=self._instance,
                    data={
                        CONF_HOST: self._host,
                        CONF_PORT: self._port,
                        CONF_API_KEY: user_input[CONF_API_KEY],
                    },
                )
        return self.async_show_form(
            step_id="zeroconf_confirm",
            data_schema=KEY_SCHEMA,
            errors=errors,
            description_placeholders={
                "name": self._instance,
                "host": self._host,
                "port": str(self._port),
            },
        )

    async def async_step_reauth(
        self, entry_data: Mapping[str, Any]
    ) -> ConfigFlowResult:
        """Jarvis refused the stored key."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The new key, checked against the same Jarvis."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            host, port = entry.data[CONF_HOST], entry.data[CONF_PORT]
            health, errors = await self._validate(host, port, user_input[CONF_API_KEY])
            if not errors:
                await self.async_set_unique_id(self._instance_of(health, host, port))
                self._abort_if_unique_id_mismatch(reason="wrong_jarvis")
                return self.async_update_reload_and_abort(
                    entry, data_updates={CONF_API_KEY: user_input[CONF_API_KEY]}
                )
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=KEY_SCHEMA,
            errors=errors,
            description_placeholders={"name": entry.title},
        )
