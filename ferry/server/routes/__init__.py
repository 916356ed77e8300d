"""One router module per resource; each exposes ``build_router(plane) -> APIRouter``."""
