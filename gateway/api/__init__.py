"""HTTP surface of the gateway: thin routes over the services; no model logic here."""
