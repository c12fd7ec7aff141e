"""The HTTP API: ``POST /recommend``, ``GET /items/{item_id}``, ``GET /health``, ``POST /reload``.

``create_app`` wraps a :class:`~serving.service.RecommendationService`; the OpenAPI docs are at ``/docs``.
Request bodies are validated by pydantic (422 naming the field, e.g. ``body.events.2.action``); a
category the loaded catalog does not know is a 422 on ``body.category``; an unknown item id in the events
is ignored and reported in ``warnings``. Handlers are plain ``def`` functions, so FastAPI runs them in its
thread pool and a slow generation never blocks ``/health``.

No annotations future-import here: FastAPI reads the request model of ``/recommend`` from the handler's
annotation, and that model is built at runtime from the configured limits.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, HTTPException, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from fashionrec.settings import paths
from serving.artifacts import ArtifactsUnavailable
from serving.schemas import Health, ItemDetails, RecommendResponse, ReloadResult, request_models
from serving.service import (
    RecommendationService,
    ReloadInProgress,
    RequestFieldError,
    ServiceNotReady,
    ServiceSettings,
)

MAX_ITEM_ID_CHARS = 200


def create_app(
    service: RecommendationService | None = None, settings: ServiceSettings | None = None
) -> FastAPI:
    """The API over ``service``, or over a new one from ``$FASHIONREC_HOME`` loaded at startup."""
    if service is None:
        service = RecommendationService(paths(), settings or ServiceSettings.from_env())
    _, RecommendRequest = request_models(service.settings.limits)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not service.ready:
            await run_in_threadpool(service.reload)
        yield

    app = FastAPI(
        title="fashionrec",
        summary="Next-purchase recommendations for a live fashion shopping session.",
        description="The session's events are rendered into the evaluation's prompt, answered by the "
        "QLoRA-fine-tuned LLM and expanded by mixup retrieval (arXiv 2410.11327 §4).",
        lifespan=lifespan,
    )
    app.state.service = service

    @app.exception_handler(RequestFieldError)
    async def field_error(request: Request, error: RequestFieldError) -> JSONResponse:
        detail = [{"type": "value_error", "loc": ["body", error.field], "msg": str(error)}]
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.exception_handler(ServiceNotReady)
    async def not_ready(request: Request, error: ServiceNotReady) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(error)})

    @app.post("/recommend", response_model=RecommendResponse)
    def recommend(request: RecommendRequest) -> RecommendResponse:  # type: ignore[valid-type]
        """The top-k next purchases for a session's events, with the LLM's answer, the query-memory
        candidates, the list each item came from and the time each stage took."""
        return service.recommend(request)

    @app.get("/items/{item_id}", response_model=ItemDetails)
    def item(item_id: Annotated[str, Path(max_length=MAX_ITEM_ID_CHARS)]) -> ItemDetails:
        """A catalog item with its attributes and train purchases."""
        found = service.item(item_id)
        if found is None:
            raise HTTPException(status_code=404, detail=f"item_id {item_id!r} is not in the catalog")
        return found

    @app.get("/health", response_model=Health)
    def health() -> Health:
        """Whether artifacts are loaded, and exactly which ones (adapter hash, LanceDB versions, run id)."""
        return service.health()

    @app.post("/reload", response_model=ReloadResult)
    def reload() -> ReloadResult:
        """Load the latest materialized artifacts off to the side, then swap them in; requests in flight
        finish on the previous ones. On failure the previous artifacts keep serving."""
        try:
            return service.reload()
        except ReloadInProgress as error:
            raise HTTPException(status_code=409, detail=str(error)) from error
        except ArtifactsUnavailable as error:
            raise HTTPException(status_code=503, detail=f"reload failed, still serving: {error}") from error

    return app
