"""The HTTP API and the web page over an EditService (FastAPI; `python -m styleclip_utils.app` serves it).

    GET    /                          the page (static/index.html)
    GET    /api/info                  preset, models, methods, defaults and limits
    POST   /api/faces                 body: the bytes of a photo -> the face: aligned, inverted, cached
    POST   /api/edit                  JSON {face | seed, neutral, target, method, strength, disentanglement,
                                      steps} -> the result (global, mapper), or 202 and a job (optimization)
    GET    /api/jobs/{id}             a job's state and progress; its result when done
    DELETE /api/jobs/{id}             cancel it
    GET    /api/results/{id}          a result's JSON again
    GET    /api/{faces|results}/{id}/{photo|before|after}.png

Errors are JSON {"error": message} with a 4xx code (the user's input) or 503 (a model the server lacks).
Requests larger than the upload limit are refused before they are read (413).
"""
import contextlib
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response

from .jobs import JobQueue
from .service import AppError

STATIC = Path(__file__).parent / "static"
BODY_SLACK = 64 * 1024   # JSON edits are tiny; an upload may carry this much beyond the image limit


def _error(status, message):
    return JSONResponse({"error": message}, status_code=status)


class BodyLimit:
    """ASGI middleware: refuse a request body over `limit` bytes, by its Content-Length before reading a byte,
    and by counting while it streams (a chunked upload has no length)."""

    def __init__(self, app, limit, shown_mb):
        self.app, self.limit, self.shown_mb = app, limit, shown_mb

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await self._too_large(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope, receive, send):
        await _error(413, f"the request is larger than this server's limit of {self.shown_mb:g} MB: send a smaller photo "
                          f"(a face needs no more than ~2000 px on the long side)")(scope, receive, send)


class _TooLarge(Exception):
    pass


def create_app(service, jobs=None):
    """The FastAPI app over `service` (an EditService, models loaded)."""
    jobs = jobs or JobQueue(service)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        jobs.shutdown()  # a running optimisation stops at its next step

    app = FastAPI(title="StyleCLIP edit", description="Upload a face, type a text, get the edit and its scores.",
                  lifespan=lifespan)
    app.state.service, app.state.jobs = service, jobs
    app.add_middleware(BodyLimit, limit=int(service.cfg.max_upload_mb * 2 ** 20) + BODY_SLACK,
                       shown_mb=service.cfg.max_upload_mb)

    @app.exception_handler(AppError)
    async def app_error(request, e):
        return _error(e.status, e.message)

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/info")
    def info():
        return service.info()

    @app.post("/api/faces")
    async def upload(request: Request):
        data = await request.body()
        if len(data) > service.cfg.max_upload_mb * 2 ** 20:
            raise AppError(413, f"the photo is {len(data) / 2 ** 20:.1f} MB; this server takes at most "
                                f"{service.cfg.max_upload_mb:g} MB: send a smaller one")
        return await run_in_threadpool(service.add_photo, data)

    @app.post("/api/edit")
    async def edit(request: Request):
        try:
            params = await request.json()
        except ValueError:
            raise AppError(422, "the edit request must be a JSON object, e.g. "
                                '{"seed": 0, "target": "face with red hair", "method": "global"}') from None
        if isinstance(params, dict) and params.get("method") == "optimization":
            job = await run_in_threadpool(jobs.submit, params)
            return JSONResponse(job.to_dict(), status_code=202, headers={"Location": f"/api/jobs/{job.id}"})
        return await run_in_threadpool(service.edit, params)

    @app.get("/api/jobs/{job_id}")
    def job(job_id: str):
        return jobs.get(job_id).to_dict()

    @app.delete("/api/jobs/{job_id}")
    def cancel(job_id: str):
        return jobs.cancel(job_id).to_dict()

    @app.get("/api/results/{result_id}")
    def result(result_id: str):
        return service.result(result_id)

    @app.get("/api/{store}/{item}/{name}.png")
    def image(store: str, item: str, name: str):
        return Response(service.image(f"/api/{store}/{item}/{name}.png"), media_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600"})

    return app
