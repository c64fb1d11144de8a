"""Route modules of the API, one per area; each exports ``routes``."""
