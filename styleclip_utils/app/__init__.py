"""The upload-and-edit app: StyleCLIP's three methods behind an HTTP API and a web page.

    make serve                                   # or: python -m styleclip_utils.app --port 8000
    open http://localhost:8000

`service` holds the models and the edits (no web framework), `jobs` runs optimisations in the background,
`server` is the FastAPI layer and `static/index.html` the page. docs/app.md has the API.
"""
