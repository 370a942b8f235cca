"""Loading and validating project.yaml: pydantic schema, YAML positions for errors, `extends:`, matrix expansion."""
