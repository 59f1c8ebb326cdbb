"""The gateway fixtures of the API tests, for the faults injected under them."""

from tests.gateway.api_support import gateway_settings  # noqa: F401 - a fixture
