"""One router per resource; ``ROUTERS`` is what the app includes."""

from vitrine.serve.routes import (
    admin,
    events,
    health,
    products,
    recommend,
    rules,
    search,
    similar,
    storefront,
    suggest,
    users,
)

ROUTERS = [
    search.router, recommend.router, similar.router, events.router, products.router,
    users.router, suggest.router, rules.router, admin.router, health.router, storefront.router,
]
