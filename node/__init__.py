"""The sanctuary node: vault, custody, residents, intake, HTTP API, CLI, and the composition root `app`."""
