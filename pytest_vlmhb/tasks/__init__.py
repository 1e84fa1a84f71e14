"""Task types, dataset manifests and the built-in synthetic documents."""
