"""`vidsearch serve`: an HTTP API and a web page to search, preview and watch moments (L3).

``app`` builds the FastAPI application, ``api`` and ``media`` hold its routes, ``service`` what it
keeps between requests (library, model, paging), ``frames`` the thumbnails and strips,
``security`` the guards, ``static/`` the page (no build step). Everything it finds goes through
:mod:`vidsearch.search`; it adds no SQL.
"""
