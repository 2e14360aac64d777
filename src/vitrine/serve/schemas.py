"""Request and response schemas of the HTTP API (pydantic v2)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator


def _clean_text(v: str | None) -> str | None:
    """Refuse text a store or a log cannot hold: NUL, lone surrogates."""
    if v is None:
        return v
    if "\x00" in v:
        raise ValueError("must not contain NUL characters")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return v


def _id(v: str) -> str:
    v = _clean_text(v) or ""
    if not v.strip():
        raise ValueError("must not be blank")
    return v


MIN_TIME = datetime(1970, 1, 1)
MAX_TIME = datetime(2200, 1, 1)


def _time(v: datetime | None) -> datetime | None:
    """A naive UTC datetime within 1970..2200 (what the store and the models can hold)."""
    if v is None:
        return v
    try:
        naive = v.astimezone(UTC).replace(tzinfo=None) if v.tzinfo is not None else v
    except (OverflowError, ValueError):
        raise ValueError("timestamp out of range") from None
    if not MIN_TIME <= naive < MAX_TIME:
        raise ValueError(f"timestamp must be between {MIN_TIME:%Y-%m-%d} and {MAX_TIME:%Y-%m-%d}")
    return naive


Text = Annotated[str, AfterValidator(_clean_text)]
Time = Annotated[datetime, AfterValidator(_time)]
Id = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_id)]
EventType = Literal["impression", "click", "add_to_cart", "purchase"]


class Problem(BaseModel):
    """One located problem in the input."""

    file: str
    row: int | None = None
    column: str | None = None
    message: str


class ErrorOut(BaseModel):
    """An error: what went wrong and, for data errors, each problem."""

    detail: str
    problems: list[Problem] | None = None


# -- products -----------------------------------------------------------------
class ProductIn(BaseModel):
    """A product to add or replace (the id comes from the path)."""

    model_config = ConfigDict(extra="forbid")

    title: Annotated[Text | None, Field(max_length=1000)] = None
    description: Annotated[Text | None, Field(max_length=20000)] = None
    brand: Annotated[Text | None, Field(max_length=200)] = None
    category: Annotated[Text | None, Field(max_length=1000, description="path, `A > B > C`")] = None
    color: Annotated[Text | None, Field(max_length=100)] = None
    tags: list[Annotated[Text, Field(max_length=200)]] | None = Field(default=None, max_length=100)
    price: float | None = Field(default=None, ge=0, le=1e9)
    sales: float | None = Field(default=None, ge=0, le=1e12)
    rating: float | None = Field(default=None, ge=0, le=5)
    rating_count: float | None = Field(default=None, ge=0, le=1e12)
    image: Annotated[Text | None, Field(max_length=2000, description="http(s) URL or file path")] = None
    in_stock: bool | None = None
    created_at: Time | None = None

    @field_validator("image")
    @classmethod
    def _safe_image(cls, v: str | None) -> str | None:
        if v and "://" not in v and ".." in v.replace("\\", "/").split("/"):
            raise ValueError("an image path must not contain '..'")
        if v and "://" in v and not v.lower().startswith(("http://", "https://")):
            raise ValueError("an image URL must be http(s)")
        return v


class ProductOut(BaseModel):
    """A product as the API shows it."""

    product_id: str
    title: str | None = None
    description: str | None = None
    brand: str | None = None
    category: str | None = None
    color: str | None = None
    tags: list[str] = []
    price: float | None = None
    sales: float | None = None
    rating: float | None = None
    rating_count: float | None = None
    in_stock: bool | None = None
    created_at: str | None = None
    image_url: str | None = Field(default=None, description="where the storefront gets the image")


# -- results --------------------------------------------------------------------
class Item(BaseModel):
    """One ranked product."""

    product_id: str
    position: int = Field(description="1-based rank on the whole result list")
    score: float | None = None
    title: str | None = None
    brand: str | None = None
    category: str | None = None
    color: str | None = None
    price: float | None = None
    rating: float | None = None
    rating_count: float | None = None
    in_stock: bool | None = None
    image_url: str | None = None
    pinned: bool = False
    explanation: dict[str, float | None] | None = Field(
        default=None, description="score contribution by source (explain=true)"
    )


class FacetValue(BaseModel):
    value: str
    count: int


class PriceBucket(BaseModel):
    min: float
    max: float | None
    count: int


class Facets(BaseModel):
    """Counts over the matching candidates; brand, color, price and stock ignore their own filter,
    category drills down (the children of the filtered category)."""

    category: list[FacetValue] = []
    brand: list[FacetValue] = []
    color: list[FacetValue] = []
    price: list[PriceBucket] = []
    in_stock: list[FacetValue] = []


class SearchOut(BaseModel):
    """A page of search results."""

    request_id: str = Field(description="id of this result page, for impression and click events")
    query: str | None = None
    offset: int
    limit: int
    total: int | None = Field(default=None, description="matching candidates, capped at the retrieval depth (with facets=true)")
    personalized: bool
    model_version: str | None = None
    items: list[Item]
    facets: Facets | None = None


class ItemsOut(BaseModel):
    """Recommended or similar products."""

    request_id: str
    model_version: str | None = None
    items: list[Item]


# -- events -----------------------------------------------------------------------
class EventIn(BaseModel):
    """One shopper event."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    product_id: Id
    event: EventType
    timestamp: Time | None = Field(default=None, description="default: now (UTC)")
    query: Annotated[Text | None, Field(max_length=512)] = None
    session_id: Annotated[Text | None, Field(max_length=128)] = None
    request_id: Annotated[Text | None, Field(max_length=128)] = None
    position: int | None = Field(default=None, ge=1, le=100000)


MAX_BATCH = 10000
EventsIn = EventIn | Annotated[list[EventIn], Field(min_length=1, max_length=MAX_BATCH)]


class EventsOut(BaseModel):
    accepted: int = Field(description="events stored durably and applied")


# -- rules, users, suggest, admin -------------------------------------------------
class RulesIn(BaseModel):
    """Merchandising rules for one query."""

    model_config = ConfigDict(extra="forbid")

    pin: list[Id] = Field(default_factory=list, max_length=50, description="shown first, in order")
    boost: dict[Id, float] = Field(default_factory=dict, max_length=500,
                                   description="product id -> boost in score spans (-10..10)")
    bury: list[Id] = Field(default_factory=list, max_length=500, description="pushed to the end")

    @field_validator("boost")
    @classmethod
    def _bounded(cls, v: dict[str, float]) -> dict[str, float]:
        for pid, b in v.items():
            if not -10 <= b <= 10:
                raise ValueError(f"boost of {pid!r} must be within -10..10, got {b}")
        return v


class RulesOut(RulesIn):
    query: str


class ErasedOut(BaseModel):
    erased: bool
    removed_rows: int = Field(description="stored rows removed (events, reviews, profile)")


class Suggestion(BaseModel):
    text: str
    kind: Literal["query", "product", "brand", "category"]
    score: float


class SuggestOut(BaseModel):
    query: str
    suggestions: list[Suggestion]


class HealthOut(BaseModel):
    status: Literal["ok", "no-model"]
    model_version: str | None = None
    products: int = 0
    uptime_s: float


class FitOut(BaseModel):
    state: str  # "idle", "running", "done" or "failed"
    started: float | None = None  # unix seconds
    finished: float | None = None
    model_version: str | None = None  # the model the fit saved and swapped in
    previous_version: str | None = None
    seconds: float | None = None
    error: str | None = None


class SavedModelOut(BaseModel):
    """A saved model version of the home."""

    version: str
    current: bool = Field(description="the version a load serves (`HOME/CURRENT`)")
    fitted_at: str | None = Field(description="when its fit began (UTC)")
    fitted_through: str | None = Field(description="the last event its shopper profiles hold")
    vitrine: str | None = Field(description="the vitrine version that saved it")
    megabytes: float


class ReloadOut(BaseModel):
    model_version: str | None
    previous_version: str | None
    seconds: float
