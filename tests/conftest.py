import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def ray_cluster():
    import ray

    from cluster.runtime import start_ray

    start_ray(num_cpus=4)
    yield
    ray.shutdown()
