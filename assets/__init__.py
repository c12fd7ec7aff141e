"""The Dagster code location: thin assets over the library, their resources and asset checks."""
