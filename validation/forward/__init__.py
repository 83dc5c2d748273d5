"""Independent forward models (import nothing from plscope): the truth of the validation scenarios."""
