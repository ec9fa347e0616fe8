"""`genolake serve`: a GA4GH Beacon v2 and JSON API over the lake, under a disclosure-control policy.

Needs the ``serve`` extra (``pip install 'genolake[serve]'``: FastAPI, uvicorn). Only :mod:`genolake.serve.cli`
is imported by the command line, and it imports the web stack inside the commands.
"""
