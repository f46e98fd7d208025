"""EgoClean core library: Egocentric-10K fisheye video -> rectified clips, V-JEPA 2
embeddings, temporal analysis and anomaly segments. Never imports dagster."""

__version__ = "0.1.0"
