"""Rule files: YAML with positions, pydantic schema, compiled matchers, CEL and templates."""
