small b
