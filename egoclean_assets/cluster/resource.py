"""The Ray cluster as a Dagster resource: where Ray mode's steps run and with what resources."""

import dataclasses
from typing import Mapping

from dagster import ConfigurableResource
from pydantic import Field

from egoclean.core.errors import InvalidInputError
from egoclean.settings import Settings


class RayClusterResource(ConfigurableResource):
    """Where the Ray stages run and with what resources (egoclean.cluster.ray_pipeline.RayConfig).

    Unset fields keep RayConfig's defaults; `ray_resource_from_env` fills them from
    EGOCLEAN_RAY_* variables, and Ray itself reads RAY_ADDRESS when `address` is unset."""

    address: str | None = Field(default=None, description="Ray cluster address; unset: RAY_ADDRESS, else a local Ray")
    settings: dict = Field(default_factory=dict, description="RayConfig fields (num_actors, actor_num_gpus, ...)")

    def config(self):
        # imported here, not at module top: the Ray stages are needed only in Ray mode
        from egoclean.cluster.ray_pipeline import RayConfig

        fields = set(RayConfig.__dataclass_fields__)
        unknown = sorted(set(self.settings) - fields)
        if unknown:
            raise InvalidInputError(f"ray settings: unknown {', '.join(unknown)} (known: {', '.join(sorted(fields))})")
        return RayConfig(**(self.settings | ({"address": self.address} if self.address else {}))).validate()


def ray_resource_from_env(env: Mapping[str, str] | None = None) -> RayClusterResource:
    """The Ray resource with its settings from EGOCLEAN_RAY_* (validated now, so bad values fail at load)."""
    cfg = Settings.from_env(env).ray_config()
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "address"}
    return RayClusterResource(address=cfg.address, settings=settings)
