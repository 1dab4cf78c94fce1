"""Residents\x27 identities kept from providers: detection, pseudonyms, restoration."""
