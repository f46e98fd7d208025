"""Video in and out: probing, streaming decode/encode, fisheye rectification, stream copy."""
