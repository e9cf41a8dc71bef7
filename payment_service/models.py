"""One place that imports every model module, so Base.metadata knows every table."""


def import_all_models() -> None:
    import payment_service.callbacks.models
    import payment_service.checkouts.models
    import payment_service.idempotency.models
    import payment_service.merchants.models
    import payment_service.payments.models  # noqa: F401
