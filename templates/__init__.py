"""The default theme. pyproject.toml installs this folder as the package ``digest.templates``, so
the wheel carries it and ``digest.render.environment`` finds it through importlib.resources, from
a wheel and from an editable install alike. Override any template by putting a file of the same
name in the folder that ``[templates] path`` names."""
