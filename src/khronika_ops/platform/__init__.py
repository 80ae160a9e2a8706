"""Platform deployment: the module catalog, release manifests and the plan the `platform` role applies."""
