"""One module per noun of the ``asya`` command."""
