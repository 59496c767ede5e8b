"""The admin's machinery below the use cases: database archives and their store, the sync
document, the eval runner, background upkeep, the config file, the proxy check, and calls to
providers through an executor."""
