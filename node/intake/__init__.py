"""Taking in a persona: format sniffing, importers, normalisation and the intake service."""
