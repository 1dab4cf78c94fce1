"""The organisation tree (operator, EPCI, commune), its identifiers and inherited policy."""
