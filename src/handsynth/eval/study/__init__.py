"""User-preference study kit: trials from method folders, a local web page, SQLite answers, report."""
