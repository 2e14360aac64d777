"""HTTP service and storefront page over the Engine (see docs/serve.md)."""
