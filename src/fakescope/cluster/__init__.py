"""Scanning a run's inputs on a Ray cluster (``fakescope scan --cluster``): actors that each hold one ``Scanner``
take the inputs one at a time and write each input's folder on a file system all nodes share.

Ray is an optional dependency (``pip install 'fakescope[cluster]'``); it is imported only when a cluster is used.
"""
from .ray_pool import ClusterError, RayScans, WorkerSetup

__all__ = ["ClusterError", "RayScans", "WorkerSetup"]
