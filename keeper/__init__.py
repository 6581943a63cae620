"""The keeper daemon and both sides of custody (shares, proofs, release policy); built with threshold custody."""
