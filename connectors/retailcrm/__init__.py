"""RetailCRM v5 connector: `plan` (CallEvent -> deliveries), `RetailCrmClient` (HTTP), settings, callbacks
(`callbacks` parses them, `routes` answers them)."""

from connectors.retailcrm.client import RetailCrmClient
from connectors.retailcrm.plan import plan
from connectors.retailcrm.settings import RetailCrmSettings, SettingsError, parse

__all__ = ["RetailCrmClient", "RetailCrmSettings", "SettingsError", "parse", "plan"]
