"""The node's SQL: schema migrations and one store module per table group. SQL lives nowhere else in ftm.node."""
