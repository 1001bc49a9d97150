"""The one error the converter raises for a model it will not write."""


class ConversionError(ValueError):
    """A model folder that cannot be converted; says which file or field and why."""
