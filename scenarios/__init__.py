"""The shipped scenarios (TOML files), installed as package data ``niche.scenarios``.

Not code: this file only makes the folder an importable package, so that
``importlib.resources.files("niche.scenarios")`` finds the files after a plain or an editable
install (see ``niche.config.find_scenario``; ``niche scenarios`` lists them).
"""
