import VisionMambaCLI

// One process; data-parallel training is vision-mamba-mpi.
VisionMambaCommand.main()
