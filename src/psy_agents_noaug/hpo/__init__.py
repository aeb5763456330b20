"""hpo layer."""
