"""The node's HTTP adapters: JSON API handlers, error mapping and access logging. No domain logic lives here."""
