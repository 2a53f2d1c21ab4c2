"""Response types of routes whose answer is not a domain object's public view (those live with their domain,
e.g. ``shared.tasks.views.Task``): each a ``msgspec.Struct``, so that the OpenAPI document types it."""
