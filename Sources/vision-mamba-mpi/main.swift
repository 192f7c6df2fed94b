import VisionMambaCLI
import VisionMambaDistributed

// The same commands; started by mpirun, `train` and `bench --train` run over every rank.
VisionMambaCommand.main(joinWorld: { MPIProcessGroup.start() })
