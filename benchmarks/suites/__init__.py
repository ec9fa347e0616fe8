"""The benchmark suites, in the order a run executes them (each is a module with ``run(ctx)``).

storage runs right after ingest's lake is built and before aggregate and annotate add tables; queries run
after annotate so an annotated gene can be used for the association query.
"""

SUITES = ("ingest", "storage", "aggregate", "duplicates", "annotate", "vcfout", "queries", "cli", "serve", "scaling",
          "assoc")
