"""Per-person operations on a lake: duplicate detection, withdrawal of consent, recontact lookup."""
