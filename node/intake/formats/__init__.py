"""One importer per supported persona or chat format, each turning bytes into a `PersonaDraft`."""
