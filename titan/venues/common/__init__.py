"""Types and helpers shared by every venue adapter."""
