"""The substrate every daemon stands on: identity and signing, wire codecs, the database helper."""
