// Data-parallel training from the command line: under `mpirun -np N`, `llm train` and `llm sft` find their
// rank from MPI, rank 0 starts (or resumes) the run and reports, and the other ranks join it silently.
import Foundation
import LLM

enum Ranks {
    /// MPI's world, once this process found it was started by `mpirun` with more than one rank.
    nonisolated(unsafe) static var mpi: MPICommunicator?

    /// The ranks this process trains among: MPI's world when an MPI launcher started several, else this
    /// process alone.
    static func communicator() throws -> any Communicator {
        guard let n = MPICommunicator.launchedWorldSize(), n > 1 else { return SingleProcess() }
        let world = try MPICommunicator.world()
        mpi = world
        return world
    }

    /// A new run: rank 0 builds it with `start`, then the others join it once its config is written; every
    /// rank then holds rank 0's weights.
    static func start(_ communicator: any Communicator, parallel: ParallelFor,
                      _ start: () throws -> Trainer) throws -> Trainer {
        guard communicator.size > 1 else { return try start() }
        let mine = communicator.isMain ? try start() : nil
        // Rank 0's run directory (the default one is named by rank 0's clock); also waits for the run to exist.
        let path = try communicator.broadcast(mine?.run.path ?? "", root: 0)
        let trainer = try mine ?? Trainer.join(run: RunDirectory(path), parallel: parallel, communicator: communicator)
        try trainer.synchronizeWeights()
        return trainer
    }

    /// A resumed run: rank 0 first (it removes what interrupted writes left), then the others.
    static func resume(_ communicator: any Communicator, run: String, parallel: ParallelFor,
                       status: (String) -> Void) throws -> Trainer {
        let directory = RunDirectory(RunDirectory.resolvingLinks(run))
        let mine = communicator.isMain
            ? try Trainer.resume(run: directory, parallel: parallel, communicator: communicator, status: status) : nil
        try communicator.barrier()
        return try mine ?? Trainer.resume(run: directory, parallel: parallel, communicator: communicator)
    }

    /// A line on how the run is split over the ranks and what ZeRO-1 saves, or nil for one process.
    static func describe(_ trainer: Trainer) -> String? {
        let ranks = trainer.communicator.size
        guard ranks > 1 else { return nil }
        let t = trainer.config.training, n = trainer.model.weights.adapter?.parameterCount ?? trainer.model.weights.layout.totalCount
        let full = Double(2 * 4 * n) / 1e6, mine = Double(2 * 4 * trainer.model.optimizerShard.count) / 1e6
        var line = "data parallel over \(ranks) ranks (\(mpi?.implementation ?? "MPI")): \(t.accumulationSteps / ranks) micro-batch(es) of B=\(t.batch) × T=\(t.seq) per rank per step; "
        line += t.shardsOptimizer ? String(format: "ZeRO-1: AdamW moments %.1f MB on each rank (%.1f MB without)", mine, full)
            : String(format: "AdamW moments %.1f MB on each rank (--zero 1 would make it %.1f MB)", full, full / Double(ranks))
        return line
    }

    /// Ends MPI after a run that finished on every rank.
    static func finish() { mpi?.finalize() }
}
