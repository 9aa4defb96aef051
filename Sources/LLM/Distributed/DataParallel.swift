// What data-parallel training does to a model between its steps: sum the gradients over the ranks, and start
// every rank from the same weights. (The loop that calls these is `Trainer`'s.)

extension Transformer {
    /// Replaces every rank's parameter gradients by their sum over the ranks (an all-reduce in fp32), timed as
    /// "communication" in the profile.
    public func sumGradients(over communicator: any Communicator) throws(DistributedError) {
        let gradients = UnsafeMutableBufferPointer(start: grads.base, count: grads.count)
        try measuringCommunication { () throws(DistributedError) in try communicator.allReduceSum(gradients) }
    }

    /// Copies rank `root`'s trainable weights (the whole model's, or the LoRA adapter's) to every rank.
    public func broadcastTrainableWeights(over communicator: any Communicator, root: Int) throws(DistributedError) {
        let arena = weights.adapter?.arena ?? weights.arena
        try communicator.broadcast(UnsafeMutableRawBufferPointer(start: arena.base, count: arena.count * 4), root: root)
    }
}

extension Transformer {
    /// One AdamW step under ZeRO-1, as llm.c's: the gradients are reduce-scattered (each rank gets the sum over
    /// the ranks of its part, `optimizerShard`), the global gradient norm is the square root of the ranks'
    /// summed squares of their parts, each rank updates its part of the weights with its part of the moments,
    /// and an all-gather gives every rank all the updated weights. The same arithmetic per element as
    /// `update(_:step:)` on summed gradients; returns the norm before clipping, and throws without touching the
    /// weights if it is not finite (on every rank alike).
    @discardableResult
    public func updateSharded(_ opt: AdamWConfig, step: Int, over communicator: any Communicator) throws -> Double {
        precondition(step >= 1, "AdamW steps count from 1")
        precondition(optimizer == .adamw && weights.adapter == nil, "ZeRO-1 shards AdamW on a whole model")
        let parts = evenParts(count: grads.count, size: communicator.size)
        let shard = optimizerShard
        guard parts[communicator.rank] == shard else {
            throw DistributedError.invalid("this rank's optimizer shard \(shard) is not its part \(parts[communicator.rank])")
        }
        let gradients = UnsafeMutableBufferPointer(start: grads.base, count: grads.count)
        try measuringCommunication { () throws(DistributedError) in try communicator.reduceScatterSum(gradients, parts: parts) }
        var squares = 0.0
        profile.measureIfSet(.gradNorm) {
            sumOfSquaresByBlock(grads.base + shard.lowerBound, count: shard.count, partials: normPartials, parallel: parallel)
            for b in 0..<(shard.count + sumBlock - 1) / sumBlock { squares += normPartials[b] }
        }
        let norm = try measuringCommunication { () throws(DistributedError) in try communicator.sum(squares) }.squareRoot()
        guard norm.isFinite else { throw ModelError.nonFinite("gradient norm (\(norm))") }
        let scale: Float = if let clip = opt.gradClip, clip > 0 { Float(min(1, clip / (norm + 1e-6))) } else { 1 }
        let layout = weights.layout
        for t in 0..<layout.counts.count where layout.counts[t] > 0 {
            // This tensor's elements inside the shard.
            let lo = max(layout.offsets[t], shard.lowerBound), hi = min(layout.offsets[t] + layout.counts[t], shard.upperBound)
            guard lo < hi else { continue }
            let moment = lo - shard.lowerBound
            profile.measureIfSet(.adamW) {
                adamWUpdate(params: weights.arena.base + lo, grads: grads.base + lo, m: adamM.base + moment,
                            v: adamV.base + moment, n: hi - lo, gradScale: scale, lr: opt.learningRate,
                            beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps,
                            weightDecay: layout.decays[t] ? opt.weightDecay : 0, step: step, parallel: parallel)
            }
        }
        let all = UnsafeMutableBufferPointer(start: weights.arena.base, count: weights.arena.count)
        try measuringCommunication { () throws(DistributedError) in try communicator.allGather(all, parts: parts) }
        return norm
    }

    private func measuringCommunication<R>(_ body: () throws(DistributedError) -> R) throws(DistributedError) -> R {
        var result: Result<R, DistributedError>!
        profile.measureIfSet(.communication) {
            do throws(DistributedError) { result = .success(try body()) } catch { result = .failure(error) }
        }
        return try result.get()
    }
}
