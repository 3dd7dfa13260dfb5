"""Local development only: ``vdup up`` (Triton, indexer shards and the API as processes on
127.0.0.1), ``vdup triton`` (the real tritonserver from the nvidia-pytriton wheel), and the one
process supervisor they and the load-test runner share. The image's wheel leaves this package
out; the ``vdup`` command then says these subcommands are not available."""
