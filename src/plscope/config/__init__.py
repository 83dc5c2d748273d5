"""Declarative schemas (pydantic v2) of the TOML files plscope reads."""
