"""carewatch: the NHS / social care interface pipeline.

Where each concern lives (see docs/architecture.md):

- ``carewatch.paths``       project paths and environment overrides
- ``carewatch.geography``   reference geography: councils, HWB areas, legacy codes, boundary changes
- ``carewatch.sources``     the source catalogue (config/sources.yaml)
- ``carewatch.fetch``       HTTP fetching into the immutable raw store + manifest
- ``carewatch.rawstore``    the content-addressed raw landing store
- ``carewatch.parsers``     one parser per publication format, registry ``parse(source, path)``
- ``carewatch.samples``     deterministic generator of the embedded sample publications
- ``carewatch.cli``         the ``carewatch`` command-line tool
"""

__version__ = "0.1.0"
