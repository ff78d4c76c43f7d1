from typing import Any

import pytest

from publisher import NodeCatalog


@pytest.fixture(scope="session")
def catalog(object_info: dict[str, Any]) -> NodeCatalog:
    """The live engine's node schemas, typed."""
    return NodeCatalog.from_object_info(object_info)
