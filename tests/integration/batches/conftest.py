from tests.integration.batches.helpers import clients

__all__ = ["clients"]
