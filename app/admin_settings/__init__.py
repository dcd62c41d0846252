"""Office environments, administrations, documents: Settings › Administraties."""
