import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def _ray_session():
    yield
    import ray

    ray.shutdown()


@pytest.fixture(scope="module")
def ray_cluster(_ray_session):
    """The local Ray the test modules share: started once, and started again for a module
    that comes after one with a cluster of its own (tests/test_autoscaling.py)."""
    from cluster.runtime import start_ray

    start_ray(num_cpus=4)
