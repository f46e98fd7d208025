"""Camera motion of a rectified clip: monocular visual odometry, its trajectory type and evaluation.

`trajectory`: the per-frame pose table (`Trajectory`), its Parquet and TUM files, and the
`PinholeCamera` it is measured with. `odometry`: the tracker. `evaluation`: ATE and RPE.
"""
